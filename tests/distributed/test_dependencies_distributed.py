"""Dependent runs with 3 schedulers and 2 Celery workers on PostgreSQL: each downstream run is
created exactly once per qualifying upstream end, none for failures under ``on: success``, and
says which run started it.

Per group ``g``: ``a-g`` fires ``@every 2s`` (it fails on purpose in odd groups), ``b-g`` runs after
``a-g`` on success, ``c-g`` after both ``a-g`` and ``b-g`` (a fan-in), and in odd groups ``d-g``
after ``a-g`` on failure. ``make test`` runs a few groups for a few seconds;
``UPKEEP_DEPS_FULL=1`` the acceptance size: 50 groups for 60 s.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from datetime import datetime

import pytest

from distributed.test_celery import Cluster

FULL = os.environ.get("UPKEEP_DEPS_FULL") == "1"
GROUPS = 50 if FULL else 6
SECONDS = 60 if FULL else 12

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("distributed")]


def _tasks(cluster: Cluster) -> None:
    create = cluster.service.create_task
    for g in range(GROUPS):
        failing = g % 2 == 1
        create(
            {"name": f"a-{g}", "type": "debug.fail" if failing else "debug.noop", "schedule": "@every 2s"}, actor="t"
        )
        create(
            {"name": f"b-{g}", "type": "debug.noop", "concurrency": "allow", "after": {"tasks": [f"a-{g}"]}}, actor="t"
        )
        fan_in = {"tasks": [f"a-{g}", f"b-{g}"], "within": "1h"}
        create({"name": f"c-{g}", "type": "debug.noop", "concurrency": "allow", "after": fan_in}, actor="t")
        if failing:
            on_failure = {"tasks": [f"a-{g}"], "on": "failure"}
            create({"name": f"d-{g}", "type": "debug.noop", "concurrency": "allow", "after": on_failure}, actor="t")


def _finished(run) -> datetime:
    return run.finished_at


def test_dependent_runs_exactly_once_with_three_schedulers_and_two_celery_workers(tmp_path, pg_database, redis_server):
    cluster = Cluster(tmp_path, pg_database, redis_server.url)
    try:
        _tasks(cluster)
        for i in range(2):
            cluster.start(f"worker{i}", "worker", "--concurrency", "2")
        for i in range(3):
            cluster.start(f"scheduler{i}", "scheduler")
        time.sleep(SECONDS)
        cluster.stop_firing([f"a-{g}" for g in range(GROUPS)])
        cluster.wait_until(lambda: cluster.active() == 0, 240, "the dependent runs to drain")
        by_task = defaultdict(list)
        for run in cluster.runs():
            by_task[run.task_name].append(run)
        for g in range(GROUPS):
            ups = [r for r in by_task[f"a-{g}"] if r.status != "skipped"]
            ok = {r.id for r in ups if r.status == "completed"}
            failed = {r.id for r in ups if r.status == "failed"}
            assert ups and (failed if g % 2 else ok), f"a-{g} did not run"
            followers = by_task[f"b-{g}"]
            assert all(r.origin == "dependency" and r.upstream_runs[0]["run_id"] == r.trigger_run_id for r in followers)
            # exactly once per successful upstream run; none for a failure (on: success)
            assert sorted(r.trigger_run_id for r in followers) == sorted(ok), f"b-{g}"
            assert all(r.triggered_by == f"after run {r.trigger_run_id} of a-{g}" for r in followers)
            if g % 2:
                assert sorted(r.trigger_run_id for r in by_task[f"d-{g}"]) == sorted(failed), f"d-{g}"
                assert by_task[f"c-{g}"] == []
            else:
                _check_fan_in(g, by_task)
        counts = {k: sum(len(v) for name, v in by_task.items() if name.startswith(k)) for k in "abcd"}
        print(f"\n{GROUPS} groups, {SECONDS}s: runs per kind {counts}")  # the measurement behind the report
    finally:
        cluster.stop_all()


def _check_fan_in(g: int, by_task: dict[str, list]) -> None:
    """Each fan-in run consumed one new run of each upstream task; none was missed at the end."""
    runs = {r.id: r for name in (f"a-{g}", f"b-{g}") for r in by_task[name]}
    fan_ins = by_task[f"c-{g}"]
    assert fan_ins, f"c-{g} never ran"
    consumed: dict[str, list[int]] = defaultdict(list)
    for fan_in in fan_ins:
        inputs = {u["task"]: u["run_id"] for u in fan_in.upstream_runs}
        assert sorted(inputs) == [f"a-{g}", f"b-{g}"] and fan_in.trigger_run_id in inputs.values()
        for name, run_id in inputs.items():
            assert runs[run_id].status == "completed" and runs[run_id].task_name == name
            consumed[name].append(run_id)
    for name, ids in consumed.items():
        assert len(ids) == len(set(ids)), f"c-{g}: a run of {name} started it twice"
    last = {u["task"]: runs[u["run_id"]] for u in fan_ins[-1].upstream_runs}
    newer = {
        name: [r for r in by_task[name] if r.status == "completed" and _finished(r) > _finished(last[name])]
        for name in last
    }
    assert not all(newer.values()), f"c-{g}: both upstream tasks ended again after its last run, which never came"

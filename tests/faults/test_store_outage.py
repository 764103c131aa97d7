"""PostgreSQL stopped (``pg_ctl -m immediate stop``) at points of a run, under the embedded
executor (``upkeep serve``) and under Celery (``upkeep scheduler`` + ``upkeep worker``).

Afterwards every run is terminal, every execution is recorded once with its real outcome (a
success stays a success, nothing is judged lost), nothing ran twice, and no slot is missing."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from faults.harness import Deployment
from support.servers import start_postgres, start_redis
from upkeep.store.db import Store

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.xdist_group("faults")]


@pytest.fixture
def pg():
    # commits reach the WAL before they return: an immediate stop loses none (the suite's default
    # server trades that away for speed)
    server = start_postgres({"synchronous_commit": "on"})
    yield server
    server.remove()


@pytest.fixture
def deployment(request, tmp_path, pg):
    executor = request.param
    url = pg.url(pg.create_database("upkeep"))
    redis = None
    if executor == "celery":
        redis = start_redis()  # one broker per deployment: no other test's worker takes its messages
        Store(url).upgrade()
    dep = Deployment(tmp_path, url, executor=executor, broker_url=redis.url if redis else None)
    dep.write_tasks()
    if executor == "celery":
        dep.upkeep("apply")
    try:
        yield dep
    finally:
        dep.stop_all()
        if redis:
            redis.remove()


def stop_store_at(dep: Deployment, pg, point: str) -> None:
    """Wait for ``point`` of the next execution of ``work`` and stop PostgreSQL there."""
    if point == "before_claim":
        dep.wait_for_line("end", after=dep.count("end"))  # between two runs: the next is not claimed yet
    elif point == "mid_run":
        dep.wait_for_line("start", after=dep.count("start"))
    else:  # at_finish: the handler returns within the outage
        dep.wait_for_line("ending", after=dep.count("ending"))
    pg.stop("immediate")


@pytest.mark.parametrize("deployment", ["embedded", "celery"], indirect=True)
@pytest.mark.parametrize("point", ["before_claim", "mid_run", "at_finish"])
def test_a_store_outage_loses_and_doubles_nothing(deployment, pg, point, outage):
    dep = deployment
    dep.start_all()
    dep.wait_for_line("end", timeout=90)  # up and running: one whole execution
    stop_store_at(dep, pg, point)
    time.sleep(outage)
    pg.start()
    ended = dep.count("end")
    dep.wait_for_line("end", after=ended + 1, timeout=60 + outage)  # two more executions after it
    dep.disable()
    dep.drain()
    dep.assert_invariants()


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_a_result_kept_by_a_worker_killed_in_the_outage_is_recorded_after_its_restart(deployment, pg, outage):
    """The store stops as a run finishes; the worker keeps the result, then is killed (-9, with its
    whole process group); started again once the store is back, it records the kept result, with
    the time the handler really ended, before anything else."""
    dep = deployment
    dep.start_all()
    dep.wait_for_line("end", timeout=90)
    stop_store_at(dep, pg, "at_finish")
    dep.wait_for_line("end", after=dep.count("ending") - 1)  # that execution ended within the outage
    kept = dep.data_dir / "pending"
    dep.wait_until(lambda: list(kept.glob("*.json")), 10, "the result kept on disk")
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in kept.glob("*.json"))
    dep.kill("serve")
    time.sleep(outage)
    pg.start()
    restarted = datetime.now(UTC)
    dep.start_all()
    ended = dep.count("end")
    dep.wait_for_line("end", after=ended, timeout=60)
    dep.disable()
    dep.drain()
    dep.assert_invariants(crashed=True)
    assert not list(kept.glob("*.json")), "a kept result was not recorded"
    work = [r for r in dep.runs() if r.task_name == "work" and r.status == "completed"]
    assert any(r.finished_at < restarted for r in work), "no result kept across the restart"


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_a_run_killed_with_its_worker_is_recovered_at_restart_before_new_work(deployment, outage):
    """The worker dies mid-run (-9, its whole tree) and is down for ``outage`` seconds; at its start
    it recovers the dead run (failed, retried) before it starts anything new."""
    dep = deployment
    dep.start_all()
    dep.wait_for_line("end", timeout=90)
    dep.wait_for_line("start", after=dep.count("start"))
    dep.kill("serve")
    time.sleep(outage)
    dep.start_all()
    dep.wait_for_line("end", after=dep.count("end") + 1, timeout=60)
    dep.disable()
    dep.drain()
    dep.assert_invariants(crashed=True)
    runs_ = dep.runs()
    lost = [r for r in runs_ if (r.error or "").startswith("worker ")]
    assert lost and all("is gone" in r.error for r in lost)
    after = [r for r in runs_ if r.started_at and r.started_at > max(r.started_at for r in lost)]
    assert after and min(r.started_at for r in after) > max(r.finished_at for r in lost), (
        "new work started before the dead runs were recovered"
    )

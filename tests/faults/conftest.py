"""Fault injection: real upkeep processes on a real store that is broken on purpose.

``make test`` runs each kind of fault once with a short outage and heartbeat/stale settings lowered
so a case takes seconds: the store stopped at each point of a run, each point under one of the two
executors (``SHORT_STORE_OUTAGES``). ``make test-faults`` (``--faults-long`` or
``UPKEEP_FAULTS_LONG=1``) runs every point under both executors, outages of 5-40 s, each case 5 times.
"""

from __future__ import annotations

import os
import random

import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--faults-long",
        action="store_true",
        default=False,
        help="fault-injection suite: outages of 5-40 s, each case 5 times (make test-faults)",
    )


def long_mode(config) -> bool:
    return config.getoption("--faults-long") or os.environ.get("UPKEEP_FAULTS_LONG", "") in ("1", "true", "yes")


def pytest_generate_tests(metafunc):
    if "outage" in metafunc.fixturenames:
        if long_mode(metafunc.config):
            rng = random.Random(f"{metafunc.definition.nodeid}")
            # the first and last of the range always, three drawn between
            seconds = [5.0, 40.0, *(round(rng.uniform(5, 40), 1) for _ in range(3))]
        else:
            seconds = [2.0]
        metafunc.parametrize("outage", seconds, ids=[f"outage{s:g}s" for s in seconds])


# (point, executor) of the store outages ``make test`` runs: every point and both executors, each
# case about 16 s; the other three are left to ``make test-faults``. The embedded executor's stop
# at a finish is also the first half of the kept-result case, which ``make test`` runs.
SHORT_STORE_OUTAGES = {("before_claim", "celery"), ("mid_run", "embedded"), ("at_finish", "celery")}


def _short_case(item) -> bool:
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec else {}
    if "faults" not in item.nodeid or "point" not in params or "deployment" not in params:
        return True
    return (params["point"], params["deployment"]) in SHORT_STORE_OUTAGES


def pytest_collection_modifyitems(config, items):
    if not long_mode(config):
        kept, left_out = [], []
        for item in items:
            (kept if _short_case(item) else left_out).append(item)
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            items[:] = kept
        return
    for item in items:
        if "faults" in item.nodeid:
            item.add_marker(pytest.mark.timeout(600))

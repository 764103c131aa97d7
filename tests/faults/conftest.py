"""Fault injection: real upkeep processes on a real store that is broken on purpose.

``make test`` runs each case once with short outages and heartbeat/stale settings lowered so a
case takes seconds. ``make test-faults`` (``--faults-long`` or ``UPKEEP_FAULTS_LONG=1``) runs
outages of 5-40 s, each case 5 times.
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


def pytest_collection_modifyitems(config, items):
    if not long_mode(config):
        return
    for item in items:
        if "faults" in item.nodeid:
            item.add_marker(pytest.mark.timeout(600))

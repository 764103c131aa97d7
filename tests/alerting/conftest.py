"""Fixtures of the alerting tests: real SMTP and webhook receivers, an instance from upkeep.yaml."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "notify"))

from alerting_world import SMTP_PASSWORD, World  # noqa: E402
from notify_receivers import receiver_fixtures  # noqa: E402

smtp, http = receiver_fixtures(SMTP_PASSWORD)  # channel hook posts to /hook, pager to /pager


@pytest.fixture
def world(request, tmp_path, smtp, http, monkeypatch):
    """On SQLite; a test parametrized with ``indirect=["world"]`` and "postgres" gets a PostgreSQL store."""
    monkeypatch.setenv("UPKEEP_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    smtp.inbox.messages.clear()
    http.requests.clear()
    http.status = 200
    database_url = request.getfixturevalue("pg_database") if getattr(request, "param", None) == "postgres" else None
    made = World(tmp_path, smtp, http, database_url)
    yield made
    made.close()

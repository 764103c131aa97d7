"""performance.review: logs, database and run history, each compared with the previous period."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from support.contexts import run_handler
from upkeep.app.run_services import RunServices
from upkeep.clock import FakeClock
from upkeep.errors import ConfigError
from upkeep.settings import Settings
from upkeep.store.models import Run

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)


def _log(path, now: datetime) -> None:
    """Previous 7 days: 200 fast requests, no 5xx. Last 7 days: 400 slower requests, 5 % 5xx."""
    lines = []
    for i in range(200):
        at = now - timedelta(days=7) - timedelta(minutes=30 * i + 1)
        lines.append({"level": "info", "time": at.isoformat(), "statusCode": 200, "durationMs": 100, "msg": "req"})
    for i in range(400):
        at = now - timedelta(minutes=20 * i + 1)
        status = 500 if i % 20 == 0 else 200
        lines.append(
            {
                "level": "error" if status == 500 else "info",
                "time": at.isoformat(),
                "statusCode": status,
                "durationMs": 300,
                "msg": "req",
            }
        )
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")


def _runs(store, now: datetime) -> None:
    rows = []
    for i in range(10):  # previous period: backup takes 60 s, never fails
        end = now - timedelta(days=8, hours=i)
        rows.append(
            Run(
                task_name="backup",
                task_type="backup.create",
                status="completed",
                outcome="ok",
                started_at=end - timedelta(seconds=60),
                finished_at=end,
            )
        )
    for i in range(10):  # this period: 150 s, 3 of 10 failed
        end = now - timedelta(days=1, hours=i)
        rows.append(
            Run(
                task_name="backup",
                task_type="backup.create",
                status="failed" if i < 3 else "completed",
                outcome=None if i < 3 else "ok",
                started_at=end - timedelta(seconds=150),
                finished_at=end,
            )
        )
    with store.write() as s:
        s.add_all(rows)


def test_regressions_against_the_previous_period_are_findings(sqlite_store, tmp_path):
    log = tmp_path / "api.log"
    _log(log, NOW)
    _runs(sqlite_store, NOW)
    services = RunServices(sqlite_store, Settings(config=tmp_path / "upkeep.yaml"))
    result = run_handler(
        sqlite_store,
        "performance.review",
        {"period": "7d", "logs": [str(log)]},
        services=services,
        clock=FakeClock(NOW),
    )
    figures = result["logs"][str(log)]
    assert figures["current"]["requests"] == 400 and figures["previous"]["requests"] == 200
    assert figures["current"]["avg_ms"] == 300 and figures["previous"]["avg_ms"] == 100
    assert figures["current"]["rate_5xx"] == 0.05 and figures["previous"]["rate_5xx"] == 0.0
    backup = result["runs"]["current"]["backup"]
    assert (backup["runs"], backup["failed"], backup["failure_rate"]) == (10, 3, 0.3)
    assert result["runs"]["previous"]["backup"]["p95_seconds"] == 60
    messages = " | ".join(f["message"] for f in result["findings"])
    assert "p95 response time 300 ms, up from 100 ms" in messages
    assert "5xx rate 5.00%, up from 0.00%" in messages
    assert "3 of 10 runs failed" in messages
    assert "p95 duration 150.0s, up from 60.0s" in messages
    assert result["outcome"] == "warning"


def test_database_slow_queries_and_bloat_are_reviewed(sqlite_store, tmp_path, pg_server, pg_database):
    url = pg_database.replace("postgresql+psycopg://", "postgresql://")
    first = run_handler(
        sqlite_store, "performance.review", {"databases": [url], "include_runs": False}, clock=FakeClock(NOW)
    )
    review = first["databases"][url]
    assert review["previous"] is None
    assert review["current"]["size_bytes"] > 0
    import psycopg

    with psycopg.connect(pg_server.dsn(url.rsplit("/", 1)[-1]), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for _ in range(5):
            conn.execute("SELECT pg_sleep(0.11)")
    second = run_handler(
        sqlite_store,
        "performance.review",
        {"databases": [url], "include_runs": False},
        clock=FakeClock(NOW + timedelta(days=30)),
    )
    review = second["databases"][url]
    assert review["previous"]["at"] == NOW.isoformat()
    assert any("pg_sleep" in q["query"] for q in review["slow_queries"])
    assert any("slow queries, 0 at the previous review" in f["message"] for f in second["findings"])
    assert second["outcome"] == "warning"


def test_nothing_to_review_is_a_config_error(sqlite_store):
    with pytest.raises(ConfigError, match="nothing to review"):
        run_handler(sqlite_store, "performance.review", {})

"""health.report: upkeep's own health, the health.check targets and recent log errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from support.contexts import run_handler
from upkeep.app import Upkeep
from upkeep.app.run_services import RunServices
from upkeep.engine.scheduler import record_instance
from upkeep.settings import Settings


def test_report_flags_a_missing_scheduler_failing_tasks_and_log_errors(sqlite_store, tmp_path):
    settings = Settings(config=tmp_path / "upkeep.yaml")
    services = RunServices(sqlite_store, settings)
    service = Upkeep(settings, sqlite_store)
    service.create_task({"name": "broken", "type": "debug.fail"}, actor="t")
    from upkeep.engine import lifecycle

    run_id = service.trigger("broken", actor="t")["id"]
    lifecycle.claim(sqlite_store, run_id, lifecycle.WorkerIdentity("h", 1, 1))
    lifecycle.finish(sqlite_store, run_id, "failed", error="boom")
    now = datetime.now(UTC)
    log = tmp_path / "api.log"
    lines = [{"level": "ERROR", "time": (now - timedelta(hours=1)).isoformat(), "msg": "db down"}] * 3
    lines += [{"level": "ERROR", "time": (now - timedelta(days=3)).isoformat(), "msg": "old"}] * 5
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))

    result = run_handler(sqlite_store, "health.report", {"logs": [str(log)], "alert_threshold": 2}, services=services)
    assert result["outcome"] == "critical"  # no scheduler has ever ticked
    assert [t["name"] for t in result["failing_tasks"]] == ["broken"]
    assert result["log_errors"]["errors"] == 3  # the last 24 h only, not the whole file
    messages = " ".join(f["message"] for f in result["findings"])
    assert "no scheduler has ticked" in messages and "failing: broken" in messages and "3 errors" in messages

    record_instance(sqlite_store, "scheduler:test", "scheduler", datetime.now(UTC))
    result = run_handler(sqlite_store, "health.report", {"failing_tasks_outcome": "ok"}, services=services)
    assert result["outcome"] == "ok" and result["last_scheduler_tick"] is not None

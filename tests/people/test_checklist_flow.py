"""A weekly checklist end to end, on a real store with the real scheduler, worker processes and
alerter: 3 manual and 2 automatic items, one satisfied by a real backup that just succeeded, one
failing because the health task found its service down (critical). The instance opens on its
schedule; the next slot still runs while it is open; people tick the rest through the API (as the
UI does) and the CLI, and it completes; the one left open past its due time alerts once."""

from __future__ import annotations

import sqlite3
import warnings
from datetime import UTC, datetime, timedelta

import pytest
from notify_receivers import HttpReceiver
from typer.testing import CliRunner

from support.people import finished, page_csrf, sign_in
from support.servers import free_port
from upkeep.api.app import create_app
from upkeep.app import Upkeep
from upkeep.app.run_services import RunServices
from upkeep.cli.main import app as cli_app
from upkeep.clock import FakeClock
from upkeep.engine.pool import EmbeddedExecutor
from upkeep.engine.scheduler import Scheduler
from upkeep.notify.alerter import Alerter
from upkeep.people import accounts, checklists
from upkeep.settings import Settings
from upkeep.store.db import Store
from upkeep.store.records import CONFIG_DOMAIN, Records

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.slow


def weekly_cron(slot: datetime) -> str:
    """Every week at ``slot``'s weekday, hour and minute (cron: 0 is Sunday)."""
    return f"{slot.minute} {slot.hour} * * {slot.isoweekday() % 7}"


@pytest.fixture
def hook():
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def world(tmp_path, hook):
    settings = Settings(config=tmp_path / "upkeep.yaml", heartbeat_seconds=1)
    store = Store(settings.resolved_database_url)
    store.upgrade()
    Records(store, CONFIG_DOMAIN).put("channels", {"hook": {"url": f"json://127.0.0.1:{hook.port}/hook"}})
    executor = EmbeddedExecutor(settings, store, size=2, services=RunServices)
    executor.start()
    yield settings, store
    executor.stop()
    store.dispose()


def test_a_weekly_checklist_opens_on_schedule_is_signed_off_and_alerts_once_when_left_open(world, hook, tmp_path):
    settings, store = world
    service = Upkeep(settings, store, trusted=True)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    first_slot = now - timedelta(days=7, minutes=2)  # last week's slot...
    second_slot = first_slot + timedelta(days=7)  # ...and this week's, two minutes ago

    app_db = tmp_path / "app.db"
    with sqlite3.connect(app_db) as db:
        db.execute("create table orders (id integer primary key, total real)")
        db.executemany("insert into orders (total) values (?)", [(i * 1.5,) for i in range(100)])
    made_last_week = Upkeep(settings, store, clock=FakeClock(first_slot - timedelta(seconds=1)), trusted=True)
    made_last_week.create_task(
        {
            "name": "nightly-backup",
            "type": "backup.create",
            "config": {
                "source": {"type": "sqlite", "name": "app", "path": str(app_db)},
                "destination": str(tmp_path / "backups"),
            },
        },
        actor="test",
    )
    made_last_week.create_task(
        {
            "name": "app-health",
            "type": "health.check",
            "config": {"checks": [{"type": "tcp", "name": "app", "port": free_port(), "timeout": 2}]},
        },
        actor="test",
    )
    made_last_week.create_task(
        {
            "name": "weekly-review",
            "type": "checklist.run",
            "schedule": weekly_cron(first_slot),
            "notify": {"channels": ["hook"]},
            "config": {
                "due_within": "3d",
                "remind_every": "1d",
                "items": [
                    {"text": "Security logs reviewed"},
                    {"text": "Firewall rules checked"},
                    {"text": "User access reviewed"},
                    {"text": "Backup succeeded", "task": "nightly-backup", "within": "26h"},
                    {"text": "App is healthy", "task": "app-health", "within": "26h"},
                ],
            },
        },
        actor="test",
    )
    backup = finished(service, service.trigger("nightly-backup", actor="test")["id"])
    health = finished(service, service.trigger("app-health", actor="test")["id"])
    assert (backup["status"], backup["outcome"]) == ("completed", "ok"), backup
    assert (health["status"], health["outcome"]) == ("completed", "critical"), health

    # the instance opens on schedule: the scheduler's slot makes a run, which opens it and completes
    Scheduler(store, settings, clock=FakeClock(first_slot + timedelta(seconds=1))).run_once()
    [run1] = service.list_runs(task="weekly-review")[0]
    assert (run1["origin"], run1["scheduled_for"]) == ("scheduled", first_slot.isoformat())
    run1 = finished(service, run1["id"])
    assert (run1["status"], run1["outcome"], run1["result"]["checklist_id"]) == ("completed", "ok", 1)
    first = checklists.get_checklist(store, 1)
    assert (first["status"], first["run_id"], first["task_name"]) == ("open", run1["id"], "weekly-review")
    manual, (backed_up, healthy) = first["items"][:3], first["items"][3:]
    assert [i["state"] for i in manual] == ["open"] * 3
    assert (backed_up["state"], backed_up["by"], backed_up["evidence"]["run_id"]) == (
        "checked",
        "task:nightly-backup",
        backup["id"],
    )
    assert healthy["state"] == "open" and healthy["evidence"]["verdict"] == "failing"
    assert healthy["evidence"]["run_id"] == health["id"] and "outcome critical" in healthy["evidence"]["reason"]

    # the next slot comes while #1 is open: its run is not skipped, and opens #2
    Scheduler(store, settings, clock=FakeClock(second_slot + timedelta(seconds=1))).run_once()
    runs = service.list_runs(task="weekly-review")[0]
    assert len(runs) == 2 and runs[0]["scheduled_for"] == second_slot.isoformat()
    run2 = finished(service, runs[0]["id"])
    assert (run2["status"], run2["result"]["checklist_id"]) == ("completed", 2)
    assert checklists.get_checklist(store, 1)["status"] == "open"

    # people tick the rest of #1: alice through the API (as the UI's buttons do), bob in the CLI
    accounts.create_user(store, name="alice", role="operator", password="alice password", actor="test")
    accounts.create_user(store, name="bob", role="operator", password="bob password", actor="test")
    client = TestClient(create_app(settings, store=store), follow_redirects=False)
    sign_in(client, "alice", "alice password")
    headers = {"X-CSRF-Token": page_csrf(client)}
    checked = client.post("/api/v1/checklists/1/items/1/check", headers=headers, json={"note": "no anomalies"})
    assert checked.status_code == 200, checked.text
    skipped = client.post(
        "/api/v1/checklists/1/items/5/skip", headers=headers, json={"reason": "app is being replaced this week"}
    )
    assert skipped.status_code == 200 and skipped.json()["status"] == "open"
    cli = CliRunner()
    for item in ("2", "3"):
        args = ["--config", str(settings.config), "--database-url", store.url, "checklists", "check", "1", item]
        result = cli.invoke(cli_app, [*args, "--as", "bob"])
        assert result.exit_code == 0, result.stderr
    assert "checklist 1 completed, outcome warning" in result.stdout
    done = checklists.get_checklist(store, 1)
    assert (done["status"], done["outcome"], done["items_skipped"]) == ("completed", "warning", 1)
    assert [(i["state"], i["by"]) for i in done["items"]] == [
        ("checked", "user:alice"),
        ("checked", "user:bob"),
        ("checked", "user:bob"),
        ("checked", "task:nightly-backup"),
        ("skipped", "user:alice"),
    ]
    ticks = [e for e in service.list_audit(object_type="checklist", object_id="1")[0] if e["action"] != "open"]
    assert [(e["actor"], e["action"]) for e in reversed(ticks)] == [
        ("task:nightly-backup", "check"),
        ("user:alice", "check"),
        ("user:alice", "skip"),
        ("user:bob", "check"),
        ("user:bob", "check"),
        ("user:bob", "complete"),
    ]

    # #2 is left open: a reminder after a day, one overdue alert past its due time, then silence
    second = checklists.get_checklist(store, 2)
    opened, due = datetime.fromisoformat(second["opened_at"]), datetime.fromisoformat(second["due_at"])
    assert due - opened == timedelta(days=3)
    alerter = Alerter(store, settings)
    alerter.evaluate_once(opened + timedelta(minutes=1))
    assert hook.paths("/hook") == []
    titles = []
    for at in (
        opened + timedelta(days=1, minutes=1),
        opened + timedelta(days=1, minutes=2),
        due + timedelta(minutes=1),
        due + timedelta(days=1),
        due + timedelta(days=2),
    ):
        titles.append([n.title for n in alerter.evaluate_once(at) if n.status == "sent"])
    assert titles == [
        ["[upkeep] INFO weekly-review: checklist 2 waits for sign-off"],
        [],
        ["[upkeep] WARNING weekly-review: checklist 2 is overdue"],
        [],
        [],
    ]
    overdue = [r.json() for r in hook.requests if r.path == "/hook"][-1]
    assert "Done: 1 of 5 items" in overdue["message"] and "- 5. App is healthy" in overdue["message"]
    assert "/checklists/2" in overdue["message"]

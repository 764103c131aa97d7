"""Every time in an alert message carries its zone: a scheduled run's slot and an overdue slot in
the task's zone, the other times in the configured zone (``Settings.timezone``, UTC by default),
and an overdue slot says how long ago it was. Delivered through a real webhook receiver."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from notify_receivers import HttpReceiver

from upkeep.app import Upkeep
from upkeep.notify import alerter as alerter_module
from upkeep.notify.alerter import Alerter
from upkeep.settings import Settings
from upkeep.store.db import Store
from upkeep.store.models import Run
from upkeep.store.records import CONFIG_DOMAIN, Records

SLOT = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)  # 03:00 in Zagreb (CET), 21:00 the day before in New York


@pytest.fixture
def hook():
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()


def _instance(tmp_path, hook, **settings) -> tuple[Store, Upkeep, Alerter]:
    config = Settings(config=tmp_path / "upkeep.yaml", **settings)
    store = Store(config.resolved_database_url)
    store.upgrade()
    Records(store, CONFIG_DOMAIN).put("channels", {"hook": {"url": f"json://127.0.0.1:{hook.port}/hook"}})
    service = Upkeep(config, store, trusted=True)
    service.create_task(
        {
            "name": "weekly-dump",
            "type": "debug.noop",
            "schedule": "0 3 * * 0",
            "timezone": "Europe/Zagreb",
            "notify": {"channels": ["hook"]},
        },
        actor="test",
    )
    return store, service, Alerter(store, config)


def _fail_a_scheduled_run(store: Store, service: Upkeep, finished: datetime) -> None:
    task = service.get_task("weekly-dump")
    with store.write() as s:
        s.add(
            Run(
                task_id=task["id"],
                task_name="weekly-dump",
                task_type="debug.noop",
                origin="scheduled",
                scheduled_for=SLOT,
                due_at=SLOT,
                status="failed",
                error="disk full",
                created_at=finished - timedelta(seconds=5),
                started_at=finished - timedelta(seconds=4),
                finished_at=finished,
            )
        )


def _bodies(hook) -> list[str]:
    return [r.json()["message"] for r in hook.requests if r.path == "/hook"]


@pytest.mark.parametrize(
    ("zone", "finished_as"),
    [
        ({}, "Finished: 2026-12-06 02:00:05 UTC"),
        ({"timezone": "America/New_York"}, "Finished: 2026-12-05 21:00:05 EST"),
    ],
    ids=["default-utc", "configured-zone"],
)
def test_a_failed_scheduled_run_shows_its_slot_in_the_tasks_zone_and_other_times_in_the_configured_one(
    tmp_path, hook, zone, finished_as, monkeypatch
):
    store, service, alerter = _instance(tmp_path, hook, **zone)
    finished = SLOT + timedelta(seconds=5)
    # the cursor's catch-up horizon follows the wall clock: set to the slot's day, whenever the test runs
    monkeypatch.setattr(alerter_module, "utcnow", lambda: finished - timedelta(seconds=10))
    alerter.evaluate_once(finished - timedelta(seconds=10), check_overdue=False)  # the cursor starts here
    _fail_a_scheduled_run(store, service, finished)
    monkeypatch.setattr(alerter_module, "utcnow", lambda: finished + timedelta(seconds=1))
    notes = alerter.evaluate_once(finished + timedelta(seconds=1), check_overdue=False)
    assert [(n.kind, n.status) for n in notes] == [("failure", "sent")]
    [body] = _bodies(hook)
    assert "Slot: 2026-12-06 03:00:00 CET" in body.splitlines()
    assert finished_as in body.splitlines()
    store.dispose()


def test_an_overdue_slot_is_in_the_tasks_zone_with_how_long_ago_it_was(tmp_path, hook):
    store, service, alerter = _instance(tmp_path, hook)
    slot = datetime.fromisoformat(service.get_task("weekly-dump")["next_run_at"])
    late = slot + timedelta(hours=3)  # the scheduler never ran: the slot was not started
    [note] = alerter.evaluate_once(late, check_overdue=True)
    assert note.kind == "overdue"
    [body] = _bodies(hook)
    local = slot.astimezone(ZoneInfo("Europe/Zagreb"))
    expected = f"slot {local:%Y-%m-%d %H:%M:%S} {local:%Z} (3 h ago) not started"
    assert expected in body, body
    assert re.search(r"\d{2}:\d{2}:\d{2}\+00:00", body) is None  # no bare ISO offsets left
    store.dispose()

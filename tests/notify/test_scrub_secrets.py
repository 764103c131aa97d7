"""The scrubber knows every secret the instance can resolve: a password a command prints, which its
task never referenced (only a target does), is *** in the run's events, result and alert; and no
stored result keeps a credential inside a URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import yaml
from notify_receivers import HttpReceiver

from upkeep.app import Upkeep
from upkeep.app.config import apply_file
from upkeep.engine import lifecycle
from upkeep.engine.execute import execute_claimed
from upkeep.notify.alerter import Alerter
from upkeep.settings import Settings
from upkeep.store.db import Store
from upkeep.store.models import Run, RunEvent

SECRET = "Sup3r-Secret-Pw_7731"
URL_PASSWORD = "plain-url-pw-9"  # never an ${env:...}: only its place in a URL says it is one
PRINT = f'echo "the password is $UPKEEP_TEST_DB_PASSWORD"; echo "dsn postgresql://app:{URL_PASSWORD}@db:5432/app"'


@pytest.fixture
def http():
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()


def test_a_secret_printed_by_a_command_task_is_masked_in_events_result_and_alert(tmp_path, monkeypatch, http):
    monkeypatch.setenv("UPKEEP_TEST_DB_PASSWORD", SECRET)
    config = tmp_path / "upkeep.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "targets": {"databases": {"main": {"url": "postgresql://app:${env:UPKEEP_TEST_DB_PASSWORD}@db/app"}}},
                "channels": {"hook": {"url": f"json://127.0.0.1:{http.port}/hook"}},
                "tasks": [
                    {
                        "name": "prints-and-fails",
                        "type": "shell.run",
                        "config": {"command": ["sh", "-c", f"{PRINT}; exit 3"]},
                        "notify": {"channels": ["hook"]},
                    },
                    {"name": "prints", "type": "shell.run", "config": {"command": ["sh", "-c", PRINT]}},
                ],
            }
        )
    )
    settings = Settings(config=config, heartbeat_seconds=5)
    store = Store(settings.resolved_database_url)
    store.upgrade()
    alerter = Alerter(store, settings)
    alerter.evaluate_once(datetime.now(UTC), check_overdue=False)  # the cursor starts here
    apply_file(settings, store, actor="test", prune=False, dry_run=False, echo=lambda line: None)
    service = Upkeep(settings, store)

    for task in ("prints-and-fails", "prints"):
        run_id = service.trigger(task, actor="test")["id"]
        execute_claimed(store, lifecycle.claim(store, run_id, lifecycle.WorkerIdentity.current()), settings)
    alerter.evaluate_once(datetime.now(UTC) + timedelta(seconds=1), check_overdue=False)

    with store.read() as s:
        stored = [(r.task_name, r.status, r.summary, r.error, r.result) for r in s.execute(sa.select(Run)).scalars()]
        events = [(e.event, e.message, e.data) for e in s.execute(sa.select(RunEvent)).scalars()]
    assert {(name, status) for name, status, *_ in stored} == {("prints-and-fails", "failed"), ("prints", "completed")}
    output = [message for event, message, _ in events if event == "output"]
    assert len(output) == 2 and all("the password is ***" in m for m in output), output
    result = next(r for name, _, _, _, r in stored if name == "prints")
    assert "the password is ***" in result["output_tail"]
    assert "postgresql://app:***@db:5432/app" in result["output_tail"]
    alert = [r.body.decode() for r in http.requests if r.path == "/hook"]
    assert len(alert) == 1 and "***" in alert[0], alert
    for text in (repr(stored), repr(events), *alert):
        assert SECRET not in text
        assert URL_PASSWORD not in text
    store.dispose()

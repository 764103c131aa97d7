"""Approval steps in procedures: the run waits without a worker, a person decides (never an API
key), approval goes on at the next step with ``confirm``, rejection and timeout cancel it."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from support.people import page_csrf, sign_in
from upkeep.app.run_services import RunServices
from upkeep.engine import lifecycle
from upkeep.engine.execute import execute_run
from upkeep.people import accounts, approvals
from upkeep.store.models import AuditEntry, Run, RunEvent

PASSWORD = "correct horse battery staple"
PROCEDURE = {
    "name": "deploy",
    "type": "procedure.execute",
    "config": {
        "steps": [
            {"type": "debug.noop", "name": "backup"},
            {"approve": {"role": "admin", "timeout": "1h", "message": "Disk > 20% free?"}, "name": "go-ahead"},
            {"type": "debug.noop", "name": "update"},
            {"type": "debug.noop", "name": "health"},
        ]
    },
}


@pytest.fixture
def people(api):
    for name, role in (("ada", "admin"), ("otto", "operator")):
        accounts.create_user(api.store, name=name, role=role, password=PASSWORD, actor="test")


def start(api, **extra) -> int:
    api.upkeep.create_task({**PROCEDURE, **extra}, actor="test")
    run_id = api.upkeep.trigger("deploy", actor="test")["id"]
    assert execute_run(api.store, run_id, api.settings, services=RunServices(api.store, api.settings)) == "waiting"
    return run_id


def run_row(api, run_id: int) -> Run:
    with api.store.read() as s:
        return s.get(Run, run_id)


def signed_in(api, name: str):
    assert sign_in(api.client, name, PASSWORD).status_code == 303
    return {"X-CSRF-Token": page_csrf(api.client)}


def test_the_run_waits_without_a_worker_and_an_approval_goes_on_with_confirm(api, people):
    run_id = start(api, timeout_seconds=600)
    waiting = run_row(api, run_id)
    assert waiting.status == "waiting" and waiting.worker is None and waiting.worker_pid is None
    assert waiting.heartbeat_at is None and waiting.deadline_at is None
    assert 0 < waiting.timeout_seconds <= 600  # what is left of it: the wait does not count
    (pending,) = approvals.list_approvals(api.store)
    assert pending["run_id"] == run_id and pending["step"] == 2 and pending["message"] == "Disk > 20% free?"
    # the reaper never judges a waiting run
    from upkeep.engine.reaper import Reaper

    assert run_id not in [r.id for r in Reaper(api.store, api.settings).find_stale()]
    csrf = signed_in(api, "ada")
    page = api.client.get(f"/runs/{run_id}").text
    assert (
        "Waiting for approval" in page and f'data-approval="{pending["id"]}"' in page and "Disk &gt; 20% free?" in page
    )
    decided = api.client.post(f"/api/v1/approvals/{pending['id']}/approve", headers=csrf)
    assert decided.status_code == 200, decided.text
    assert decided.json()["decided_by"] == "user:ada" and run_row(api, run_id).status == "pending"
    assert execute_run(api.store, run_id, api.settings, services=RunServices(api.store, api.settings)) == "completed"
    done = run_row(api, run_id)
    steps = done.result["steps"]
    assert [s["step"] for s in steps] == ["backup", "go-ahead", "update", "health"]
    assert steps[1]["summary"].startswith("approved by user:ada")
    assert steps[2]["summary"] == "nothing to do (confirmed)"  # the approval confirmed the next step only
    assert steps[3]["summary"] == "nothing to do"
    with api.store.read() as s:
        audit = s.execute(sa.select(AuditEntry).where(AuditEntry.object_type == "approval")).scalars().one()
        events = list(s.execute(sa.select(RunEvent.event).where(RunEvent.run_id == run_id)).scalars())
    assert audit.actor == "user:ada" and audit.action == "approve"
    assert events.count("started") == 2 and "waiting" in events and "resumed" in events
    assert approvals.list_approvals(api.store) == []


def test_an_api_key_cannot_approve_nor_a_person_below_the_role(api, people):
    run_id = start(api)
    (pending,) = approvals.list_approvals(api.store)
    by_key = api.post(f"/api/v1/approvals/{pending['id']}/approve", role="admin")
    assert by_key.status_code == 403 and "machine" in by_key.json()["detail"]
    csrf = signed_in(api, "otto")
    page = api.client.get(f"/runs/{run_id}").text
    assert "Waiting for approval" in page and "data-approval" not in page and "the admin role" in page
    low = api.client.post(f"/api/v1/approvals/{pending['id']}/approve", headers=csrf)
    assert low.status_code == 403 and "needs the admin role" in low.json()["detail"]
    assert run_row(api, run_id).status == "waiting"
    assert api.get("/api/v1/approvals", role="viewer").json()[0]["id"] == pending["id"]


def test_a_rejection_cancels_the_run_with_the_reason(api, people):
    run_id = start(api)
    (pending,) = approvals.list_approvals(api.store)
    csrf = signed_in(api, "ada")
    body = {"reason": "disk only 12% free"}
    rejected = api.client.post(f"/api/v1/approvals/{pending['id']}/reject", json=body, headers=csrf)
    assert rejected.status_code == 200, rejected.text
    run = run_row(api, run_id)
    assert run.status == "cancelled" and "rejected by user:ada: disk only 12% free" in run.error
    again = api.client.post(f"/api/v1/approvals/{pending['id']}/approve", headers=csrf)
    assert again.status_code == 409


def test_nobody_deciding_in_time_cancels_the_run(api, people):
    run_id = start(api)
    (pending,) = approvals.list_approvals(api.store)
    assert approvals.expire(api.store, api.upkeep.clock.now() + timedelta(minutes=59)) == []
    assert approvals.expire(api.store, api.upkeep.clock.now() + timedelta(hours=1, seconds=1)) == [pending["id"]]
    run = run_row(api, run_id)
    assert run.status == "cancelled" and "timed out: not approved within 3600s" in run.error
    assert approvals.get(api.store, pending["id"])["status"] == "expired"


def test_a_dry_run_does_not_wait_and_bad_steps_are_refused(api, people):
    api.upkeep.create_task(PROCEDURE, actor="test")
    run_id = api.upkeep.trigger("deploy", actor="test", dry_run=True)["id"]
    assert execute_run(api.store, run_id, api.settings, services=RunServices(api.store, api.settings)) == "completed"
    assert approvals.list_approvals(api.store, status=None) == []
    bad = {"steps": [{"type": "debug.noop", "approve": {"role": "admin"}}]}
    refused = api.post("/api/v1/scheduled-tasks", json={"name": "x", "type": "procedure.execute", "config": bad})
    assert refused.status_code == 422 and "either type" in refused.text
    short = {"steps": [{"approve": {"timeout": "2s"}}]}
    refused = api.post("/api/v1/scheduled-tasks", json={"name": "x", "type": "procedure.execute", "config": short})
    assert refused.status_code == 422 and "at least 5s" in refused.text


def test_the_cli_approves_as_a_named_person_and_refuses_one_without_the_role(api, people):
    from typer.testing import CliRunner

    from upkeep.cli.main import app

    run_id = start(api)
    (pending,) = approvals.list_approvals(api.store)
    env = {"UPKEEP_DATABASE_URL": api.store.url, "UPKEEP_CONFIG": str(api.settings.config)}
    runner = CliRunner()
    listed = runner.invoke(app, ["approvals", "list"], env=env)
    assert listed.exit_code == 0 and "Disk > 20% free?" in listed.stdout
    low = runner.invoke(app, ["approvals", "approve", str(pending["id"]), "--as", "otto"], env=env)
    assert low.exit_code == 2 and "needs admin" in low.stderr
    ok = runner.invoke(app, ["approvals", "approve", str(pending["id"]), "--as", "ada"], env=env)
    assert ok.exit_code == 0, ok.stderr
    assert run_row(api, run_id).status == "pending"
    assert lifecycle.cancel(api.store, run_id) == "cancelled"

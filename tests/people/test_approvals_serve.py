"""An approval step across a restart of a real `upkeep serve`: the waiting run holds no worker (the
one worker process runs other work meanwhile), survives the restart, and goes on once a person
approves through the API; a step nobody decides is cancelled by the serving scheduler."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from support.people import page_csrf, sign_in
from support.polling import eventually
from support.servers import free_port, wait_for_port
from upkeep.app import Upkeep
from upkeep.people import accounts, approvals
from upkeep.settings import Settings
from upkeep.store.db import Store

pytestmark = [pytest.mark.slow]
PASSWORD = "correct horse battery staple"


def steps(timeout: str) -> dict:
    return {
        "steps": [
            {"type": "debug.noop", "name": "backup"},
            {"approve": {"role": "admin", "timeout": timeout, "message": "go?"}, "name": "go-ahead"},
            {"type": "debug.noop", "name": "update"},
        ]
    }


def test_a_waiting_procedure_survives_a_restart_of_serve_and_goes_on_when_approved(tmp_path):
    settings = Settings(config=tmp_path / "upkeep.yaml")
    store = Store(settings.resolved_database_url)
    store.upgrade()
    service = Upkeep(settings, store)
    accounts.create_user(store, name="ada", role="admin", password=PASSWORD, actor="test")
    service.create_task({"name": "deploy", "type": "procedure.execute", "config": steps("1h")}, actor="test")
    service.create_task({"name": "quick", "type": "procedure.execute", "config": steps("5s")}, actor="test")
    service.create_task({"name": "other", "type": "debug.noop"}, actor="test")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "UPKEEP_CONFIG": str(tmp_path / "upkeep.yaml"),
        "UPKEEP_HEARTBEAT_SECONDS": "1",
        "UPKEEP_WORKER_PROCESSES": "1",
    }
    port = free_port()
    procs: list[subprocess.Popen] = []

    def serve() -> None:
        log = open(tmp_path / "serve.log", "ab")  # noqa: SIM115
        cmd = [sys.executable, "-m", "upkeep.cli.main", "serve", "--port", str(port)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
        wait_for_port(port, 60)

    def logs() -> str:
        return (tmp_path / "serve.log").read_text()[-3000:]

    def status(run_id: int) -> str:
        return service.get_run(run_id)["status"]

    try:
        serve()
        run_id = service.trigger("deploy", actor="test")["id"]
        eventually(lambda: status(run_id) == "waiting", "the procedure to wait", timeout=60, logs=logs)
        assert service.get_run(run_id)["worker"] is None
        # the only worker process is free: other work runs while the procedure waits
        other = service.trigger("other", actor="test")["id"]
        eventually(lambda: status(other) == "completed", "another run on the one worker", timeout=60, logs=logs)
        procs[-1].terminate()
        procs[-1].wait(30)
        serve()
        assert status(run_id) == "waiting"
        (pending,) = approvals.list_approvals(store)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert sign_in(client, "ada", PASSWORD).status_code == 303
            csrf = {"X-CSRF-Token": page_csrf(client)}
            answer = client.post(f"/api/v1/approvals/{pending['id']}/approve", headers=csrf)
            assert answer.status_code == 200, answer.text
        eventually(lambda: status(run_id) == "completed", "the approved procedure to end", timeout=60, logs=logs)
        result = service.get_run(run_id)["result"]
        assert [s["step"] for s in result["steps"]] == ["backup", "go-ahead", "update"]
        assert result["steps"][2]["summary"] == "nothing to do (confirmed)"
        # nobody decides the 5s approval: the serving scheduler cancels the run
        quick = service.trigger("quick", actor="test")["id"]
        eventually(lambda: status(quick) == "cancelled", "the undecided approval to time out", timeout=60, logs=logs)
        assert "timed out" in service.get_run(quick)["error"]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        store.dispose()

"""An instance made from a real upkeep.yaml (``upkeep apply``), runs executed in this process, the
alerter evaluated at a chosen time, and real SMTP and webhook receivers for its messages."""

from __future__ import annotations

import textwrap
import warnings
from datetime import UTC, datetime
from pathlib import Path

from notify_receivers import HttpReceiver, SmtpServer

from upkeep.app import Upkeep
from upkeep.app.config import apply_file
from upkeep.notify.alerter import Alerter
from upkeep.settings import Settings
from upkeep.store.db import Store

SMTP_PASSWORD = "alerting-smtp-s3cret"


# --- driving runs by hand (the one place that knows the engine's run operations) ---------------


def claim(store: Store, run_id: int):
    from upkeep.engine import lifecycle

    claimed = lifecycle.claim(store, run_id, lifecycle.WorkerIdentity.current())
    assert claimed is not None, f"run {run_id} could not be claimed"
    return claimed


def execute_claimed(store: Store, claimed, settings: Settings) -> str:
    from upkeep.engine.execute import execute_claimed as execute

    return execute(store, claimed, settings)


class World:
    """An instance whose config is an upkeep.yaml applied as ``upkeep apply`` does."""

    def __init__(self, tmp_path: Path, smtp: SmtpServer, http: HttpReceiver, database_url: str | None = None):
        self.tmp_path, self.smtp, self.http = tmp_path, smtp, http
        self.config = tmp_path / "upkeep.yaml"
        self.settings = Settings(
            config=self.config, public_url="https://upkeep.example.com/", database_url=database_url
        )
        self.store = Store(self.settings.resolved_database_url)
        self.store.upgrade()
        self.service = Upkeep(self.settings, self.store, trusted=True)
        self.alerter = Alerter(self.store, self.settings)

    def channels(self) -> str:
        return textwrap.dedent(
            f"""\
            channels:
              email:
                url: "mailto://alerts:${{env:UPKEEP_TEST_SMTP_PASSWORD}}@127.0.0.1:{self.smtp.port}?from=upkeep@example.com&to=ops@example.com"
                timeout: 10
              hook: {{url: "json://127.0.0.1:{self.http.port}/hook", timeout: 10}}
              pager: {{url: "json://127.0.0.1:{self.http.port}/pager", timeout: 10}}
            """
        )

    def apply(self, text: str, *, prune: bool = False):
        self.config.write_text(self.channels() + textwrap.dedent(text))
        return apply_file(self.settings, self.store, actor="test", prune=prune, dry_run=False, quiet=True)

    def trigger(self, task: str, **overrides) -> int:
        return self.service.trigger(task, actor="test", overrides=overrides)["id"]

    def claim(self, run_id: int):
        return claim(self.store, run_id)

    def execute(self, claimed) -> str:
        return execute_claimed(self.store, claimed, self.settings)

    def run(self, task: str, **overrides) -> int:
        """Trigger the task and execute its run here; the run's id."""
        run_id = self.trigger(task, **overrides)
        self.execute(self.claim(run_id))
        return run_id

    def finished_at(self, run_id: int) -> datetime:
        return datetime.fromisoformat(self.service.get_run(run_id)["finished_at"])

    def evaluate(self, now: datetime | None = None):
        return self.alerter.evaluate_once(now or datetime.now(UTC), check_overdue=False)

    def posts(self, path: str) -> list[dict]:
        return [r.json() for r in list(self.http.requests) if r.path == path]

    def app(self, clock=None):
        from upkeep.api.app import create_app

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from fastapi.testclient import TestClient
        return TestClient(create_app(self.settings, store=self.store, clock=clock), follow_redirects=False)

    def close(self) -> None:
        self.store.dispose()


def delivered(notes) -> list[tuple[str, str, str]]:
    """``(channel, kind, status)`` of the messages an evaluation handled, held checks left out."""
    return sorted((n.channel, n.kind, n.status) for n in notes if n.status != "held")

"""An upkeep app with a fake clock and the alerter, for heartbeat tests (``tests/heartbeats``)."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime

from upkeep.api.app import create_app
from upkeep.auth import create_key
from upkeep.heartbeats import monitors
from upkeep.notify.alerter import Alerter

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

START = datetime(2027, 3, 1, 0, 0, tzinfo=UTC)  # a Monday
SMTP_PASSWORD = "hb-smtp-pass"


class HeartbeatEnv:
    def __init__(self, settings, store, clock, smtp, http):
        self.settings, self.store, self.clock, self.smtp, self.http = settings, store, clock, smtp, http
        self.app = create_app(settings, store=store, clock=clock)
        self.client = TestClient(self.app, follow_redirects=False)
        self.tokens = {
            role: create_key(store, name=f"{role}-key", role=role)[1] for role in ("viewer", "operator", "admin")
        }
        self.alerter = Alerter(store, settings)

    def headers(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def create(self, name: str, **spec) -> str:
        """A monitor made through the API; its token."""
        body = {"name": name, "notify": {"channels": ["email", "hook"]}, **spec}
        response = self.client.post("/api/v1/heartbeats", json=body, headers=self.headers())
        assert response.status_code == 201, response.text
        return response.json()["ping_url"].rsplit("/", 1)[1]

    def at(self, when: datetime) -> HeartbeatEnv:
        self.clock.set(when)
        return self

    def ping(self, token: str, suffix: str = "", method: str = "GET", body: bytes = b""):
        return self.client.request(method, f"/ping/{token}{suffix}", content=body or None)

    def evaluate(self, when: datetime):
        self.clock.set(when)
        return self.alerter.evaluate_once(when, check_overdue=False)

    def status(self, name: str) -> str:
        return monitors.get_heartbeat(self.store, name, self.clock.now())["status"]

    def hooks(self) -> list[dict]:
        return [r.json() for r in self.http.requests if r.path == "/hook"]

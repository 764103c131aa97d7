"""An upkeep app with a fake clock, the alerter, and real SMTP and webhook receivers."""

from __future__ import annotations

import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "notify"))

from notify_receivers import HttpReceiver, SmtpServer  # noqa: E402

from upkeep.api.app import create_app  # noqa: E402
from upkeep.auth import create_key  # noqa: E402
from upkeep.clock import FakeClock  # noqa: E402
from upkeep.engine.execute import CONFIG_DOMAIN  # noqa: E402
from upkeep.heartbeats import monitors  # noqa: E402
from upkeep.notify.alerter import Alerter  # noqa: E402
from upkeep.settings import Settings  # noqa: E402
from upkeep.store.records import Records  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SMTP_PASSWORD = "hb-smtp-pass"
START = datetime(2027, 3, 1, 0, 0, tzinfo=UTC)  # a Monday


@pytest.fixture(scope="module")
def smtp():
    server = SmtpServer("alerts", SMTP_PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http():
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()


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


@pytest.fixture
def hb(tmp_path, store, smtp, http, monkeypatch):
    monkeypatch.setenv("UPKEEP_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    settings = Settings(
        config=tmp_path / "upkeep.yaml", database_url=store.url, public_url="https://upkeep.example.com/"
    )
    Records(store, CONFIG_DOMAIN).put(
        "channels",
        {
            "email": {
                "url": f"mailto://alerts:${{env:UPKEEP_TEST_SMTP_PASSWORD}}@127.0.0.1:{smtp.port}"
                "?from=upkeep@example.com&to=ops@example.com",
                "timeout": 10,
            },
            "hook": {"url": f"json://127.0.0.1:{http.port}/hook", "timeout": 10},
        },
    )
    smtp.inbox.messages.clear()
    http.requests.clear()
    env = HeartbeatEnv(settings, store, FakeClock(START), smtp, http)
    env.alerter.evaluate_once(START, check_overdue=False)
    yield env
    env.client.close()

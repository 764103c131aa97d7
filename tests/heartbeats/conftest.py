"""An upkeep app with a fake clock, the alerter, and real SMTP and webhook receivers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "notify"))

from notify_receivers import receiver_fixtures  # noqa: E402

from support.heartbeat_env import SMTP_PASSWORD, START, HeartbeatEnv  # noqa: E402
from upkeep.clock import FakeClock  # noqa: E402
from upkeep.settings import Settings  # noqa: E402
from upkeep.store.records import (
    CONFIG_DOMAIN,  # noqa: E402
    Records,  # noqa: E402
)

smtp, http = receiver_fixtures(SMTP_PASSWORD)


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

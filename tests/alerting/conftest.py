"""Fixtures of the alerting tests: real SMTP and webhook receivers, an instance from upkeep.yaml."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "notify"))

from alerting_world import SMTP_PASSWORD, World  # noqa: E402
from notify_receivers import HttpReceiver, SmtpServer  # noqa: E402


@pytest.fixture(scope="module")
def smtp():
    server = SmtpServer("alerts", SMTP_PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http():
    """The webhook receiver: channel ``hook`` posts to /hook, channel ``pager`` to /pager."""
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def world(tmp_path, smtp, http, monkeypatch):
    monkeypatch.setenv("UPKEEP_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    smtp.inbox.messages.clear()
    http.requests.clear()
    http.status = 200
    made = World(tmp_path, smtp, http)
    yield made
    made.close()

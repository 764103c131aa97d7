"""Channels and recent notifications through /api/v1 and on /alerts: a test really goes through the
channel (a webhook to a loopback receiver) and says what became of it; the recent notifications
show delivered, failed with the channel's error, and messages pending a retry."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from support.servers import free_port
from upkeep.notify import outbox
from upkeep.notify.channels import load_channels
from upkeep.store.records import CONFIG_DOMAIN, Records

sys.path.insert(0, str(Path(__file__).parent.parent / "notify"))

from notify_receivers import receiver_fixtures  # noqa: E402

_smtp, http = receiver_fixtures("unused")


@pytest.fixture
def hook(http):
    http.requests.clear()
    return http


@pytest.fixture
def channels(api, hook):
    closed = free_port()  # nothing listens there: the connection is refused
    Records(api.store, CONFIG_DOMAIN).put(
        "channels",
        {
            "hook": {"url": f"json://127.0.0.1:{hook.port}/hook", "timeout": 5, "default": True},
            "down": {"url": f"json://user:pa55word@127.0.0.1:{closed}/down", "timeout": 5},
        },
    )
    return api


def test_channels_are_listed_without_their_passwords(channels):
    items = channels.get("/api/v1/channels", role="viewer").json()["items"]
    assert [(c["name"], c["default"]) for c in items] == [("down", False), ("hook", True)]
    assert "pa55word" not in str(items)


def test_a_test_is_delivered_through_the_channel_and_listed_as_delivered(channels, hook):
    response = channels.post("/api/v1/channels/hook/test", role="operator")
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["error"]) == ("sent", None)
    [request] = hook.requests
    assert request.path == "/hook"
    assert request.json()["title"] == "[upkeep] TEST hook: test message"
    assert "sent by key:operator-key" in request.json()["message"]

    [latest, *_] = channels.get("/api/v1/notifications", role="viewer").json()["items"]
    assert (latest["channel"], latest["kind"], latest["status"], latest["label"]) == (
        "hook",
        "test",
        "sent",
        "delivered",
    )
    audit, _total = channels.upkeep.list_audit(limit=1)
    assert (audit[0]["action"], audit[0]["object_id"], audit[0]["actor"]) == ("test", "hook", "key:operator-key")


def test_a_failed_test_says_why_and_is_listed_with_its_error(channels):
    body = channels.post("/api/v1/channels/down/test", role="operator").json()
    assert body["status"] == "failed"
    assert "down" in body["error"] and "pa55word" not in body["error"]
    [latest, *_] = channels.get("/api/v1/notifications").json()["items"]
    assert (latest["status"], latest["label"], latest["error"]) == ("failed", "failed", body["error"])


def test_an_unknown_channel_is_404_and_a_viewer_may_not_send(channels):
    assert channels.post("/api/v1/channels/nope/test", role="operator").status_code == 404
    assert channels.post("/api/v1/channels/hook/test", role="viewer").status_code == 403


def test_a_message_whose_channel_failed_is_pending_a_retry_with_its_error(channels, hook):
    now = datetime.now(UTC)
    with channels.store.write() as s:
        for name in ("hook", "down"):
            note = outbox.Notification(task="nightly", channel=name, kind="failure", title=f"to {name}", body="b")
            outbox.enqueue(s, note, now)
    outbox.deliver(channels.store, load_channels(channels.store), now)

    items = channels.get("/api/v1/notifications").json()["items"]
    waiting = [i for i in items if i["status"] == "retrying"]
    assert [(i["channel"], i["label"], i["attempts"]) for i in waiting] == [("down", "pending retry", 1)]
    assert waiting[0]["error"] and waiting[0]["next_attempt_at"]
    assert items[0] == waiting[0]  # messages still waiting come first
    delivered = [(i["channel"], i["title"]) for i in items if i["label"] == "delivered"]
    assert delivered == [("hook", "to hook")]
    failed = [i for i in items if i["status"] == "failed"]
    assert [i["channel"] for i in failed] == ["down"] and failed[0]["error"] == waiting[0]["error"]


def test_the_alerts_page_lists_channels_and_notifications_and_offers_a_test_to_operators(channels):
    channels.post("/api/v1/channels/down/test", role="operator")
    viewer = channels.get("/alerts", role="viewer").text
    assert 'data-channel="hook"' in viewer and 'data-channel="down"' in viewer
    assert 'data-notification-status="failed"' in viewer and "[upkeep] TEST down: test message" in viewer
    assert "data-test-channel" not in viewer and "pa55word" not in viewer
    operator = channels.get("/alerts", role="operator").text
    assert 'data-test-channel="hook"' in operator and 'data-test-channel="down"' in operator

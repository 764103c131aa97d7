"""/alerts in real headless Chromium: an operator acknowledges an open alert, adds a recurring
silence (a bad time zone shows the server's error next to the field first) and ends it; silences a
channel and sends a test through it to a real local receiver."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _env import LiveServer

from upkeep.app.alerts import get_alert, list_silences
from upkeep.notify import alerts
from upkeep.store.records import CONFIG_DOMAIN, Records

sys.path.insert(0, str(Path(__file__).parent.parent / "notify"))

from notify_receivers import HttpReceiver  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _alerts_page(browser, server, token: str):
    """/alerts, signed in with ``token``."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(20_000)
    page.goto(f"{server.url}/alerts")
    page.get_by_label("API key").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/alerts")
    return page


def test_acknowledge_and_silence_from_the_alerts_page(api, browser, artifacts_dir):
    shots = artifacts_dir / "ui"
    shots.mkdir(parents=True, exist_ok=True)
    api.upkeep.create_task({"name": "nightly-backup", "type": "debug.noop"}, actor="test")
    with api.store.write() as s:
        alert = alerts.open_alert(
            s,
            subject="nightly-backup",
            task_name="nightly-backup",
            kind="failure",
            title="[upkeep] CRITICAL nightly-backup: failed",
            body="Task: nightly-backup (debug.noop)",
            run_id=None,
            note="",
            escalate=[],
            now=datetime.now(UTC),
        )
        alert_id = alert.id
    with LiveServer(api) as server:
        page = _alerts_page(browser, server, api.tokens["operator"])

        page.get_by_role("button", name="Acknowledge").click()
        page.locator(f'[data-alert="{alert_id}"] .badge', has_text="acknowledged").wait_for()
        assert get_alert(api.store, alert_id)["acknowledged_by"] == "key:operator-key"

        page.get_by_label("Task").fill("nightly-backup")
        page.get_by_label("Windows (one per line)").fill("Sun 02:00-05:00 Europe/Zagrebb")
        page.get_by_role("button", name="Add silence").click()
        page.locator("#err-silence-windows", has_text="unknown time zone 'Europe/Zagrebb'").wait_for()
        assert list_silences(api.store) == []
        page.get_by_label("Windows (one per line)").fill("Sun 02:00-05:00 Europe/Zagreb")
        page.get_by_label("Reason").fill("the weekly window")
        page.get_by_role("button", name="Add silence").click()
        page.locator("[data-silence] code", has_text="task=nightly-backup").wait_for()
        [silence] = list_silences(api.store)
        assert (silence["windows"], silence["reason"]) == (["Sun 02:00-05:00 Europe/Zagreb"], "the weekly window")
        page.screenshot(path=str(shots / "alerts-01-silenced.png"), full_page=True)

        page.get_by_role("button", name="End").click()
        page.get_by_text("No silences.").wait_for()
        assert list_silences(api.store) == []


def test_send_a_test_through_a_channel_and_see_it_delivered_after_silencing_it(api, browser, artifacts_dir):
    """A webhook channel to a loopback receiver this test runs: silence it for an hour from the
    form, then "Send test" goes through it anyway (a test is asked for) and shows as delivered,
    in the button's result and among the recent notifications; the receiver got it."""
    shots = artifacts_dir / "ui"
    shots.mkdir(parents=True, exist_ok=True)
    receiver = HttpReceiver().start()
    Records(api.store, CONFIG_DOMAIN).put(
        "channels", {"hook": {"url": f"json://127.0.0.1:{receiver.port}/hook", "timeout": 10}}
    )
    try:
        with LiveServer(api) as server:
            page = _alerts_page(browser, server, api.tokens["operator"])

            page.get_by_label("Channel", exact=True).fill("hook")
            page.get_by_label("For").select_option(label="1 hour")
            page.get_by_label("Reason").fill("moving the receiver")
            page.get_by_role("button", name="Add silence").click()
            page.locator("[data-silence] code", has_text="channel=hook").wait_for()
            [silence] = list_silences(api.store)
            assert silence["match"] == {"channel": "hook"} and silence["until"]

            page.get_by_role("button", name="Send test to hook").click()
            page.locator(".test-result.ok", has_text="Delivered").wait_for()
            [request] = receiver.requests
            assert request.json()["title"] == "[upkeep] TEST hook: test message"
            row = page.locator('#notifications tr[data-channel="hook"]').first
            row.locator(".badge", has_text="delivered").wait_for()
            assert "[upkeep] TEST hook: test message" in row.inner_text()
            page.screenshot(path=str(shots / "alerts-02-channel-tested.png"), full_page=True)
    finally:
        receiver.stop()

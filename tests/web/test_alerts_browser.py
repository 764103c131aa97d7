"""/alerts in real headless Chromium: an operator acknowledges an open alert, adds a recurring
silence (a bad time zone shows the server's error next to the field first) and ends it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from _env import LiveServer

from upkeep.app.alerts import get_alert, list_silences
from upkeep.notify import alerts

pytestmark = [pytest.mark.browser, pytest.mark.slow]


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
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(20_000)
        page.goto(f"{server.url}/alerts")
        page.get_by_label("API key").fill(api.tokens["operator"])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{server.url}/alerts")

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

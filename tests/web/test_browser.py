"""The admin UI in real headless Chromium against a real server with the executor and scheduler.

Logs in with a key, toggles a task, enters an invalid config value and sees the field error,
fixes it, runs the task and watches its events stream to completion, cancels a long run.
Screenshots go to ``artifacts/ui/``.
"""

from __future__ import annotations

import pytest
from _env import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_operator_flow_in_a_real_browser(api, browser, artifacts_dir):
    shots = artifacts_dir / "ui"
    shots.mkdir(parents=True, exist_ok=True)
    svc = api.upkeep
    svc.create_task(
        {
            "name": "nap",
            "type": "debug.sleep",
            "schedule": "0 3 * * *",
            "description": "A short nap",
            "config": {"seconds": 1.5},
        },
        actor="test",
    )
    svc.create_task({"name": "other", "type": "debug.noop", "schedule": "@every 1h"}, actor="test")
    with LiveServer(api, engine=True) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(20_000)
        page.on("dialog", lambda dialog: dialog.accept())

        # log in with a key
        page.goto(f"{server.url}/tasks")
        page.get_by_label("API key").fill(api.tokens["admin"])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{server.url}/tasks")
        page.screenshot(path=str(shots / "01-tasks.png"), full_page=True)

        # toggle a task
        toggle = page.get_by_role("switch", name="Enabled: other")
        assert toggle.is_checked()
        toggle.click()
        page.locator("#flash", has_text="other disabled").wait_for()
        assert svc.get_task("other")["enabled"] is False

        # an invalid config value shows the server's error next to the field
        page.goto(f"{server.url}/tasks/nap")
        seconds = page.locator("#f-config-seconds")
        seconds.fill("-5")
        page.get_by_role("button", name="Save configuration").click()
        error = page.locator("#err-f-config-seconds")
        error.filter(has_text="greater than or equal to 0").wait_for()
        assert seconds.get_attribute("aria-invalid") == "true"
        page.screenshot(path=str(shots / "02-field-error.png"), full_page=True)
        assert svc.get_task("nap")["config"]["seconds"] == 1.5

        # fix it
        seconds.fill("1.2")
        with page.expect_navigation():  # the page reloads itself once saved
            page.get_by_role("button", name="Save configuration").click()
            page.locator(".saved", has_text="Saved.").first.wait_for()
        assert svc.get_task("nap")["config"] == {"seconds": 1.2}

        # run it and watch the events stream to completion
        page.get_by_role("button", name="Run now").first.click()
        page.get_by_role("dialog").get_by_role("button", name="Run", exact=True).click()
        page.wait_for_url(f"{server.url}/runs/*")
        page.locator("#stream-state", has_text="finished: completed").wait_for(timeout=30_000)
        assert page.locator("#run-log li").count() >= 2
        assert "slept 1.2s" in page.locator("#run-summary").inner_text()
        page.screenshot(path=str(shots / "03-run-completed.png"), full_page=True)

        # cancel a long run
        page.goto(f"{server.url}/tasks/nap")
        page.get_by_role("button", name="Run now").first.click()
        page.locator("#run-overrides").fill('{"seconds": 60}')
        page.get_by_role("dialog").get_by_role("button", name="Run", exact=True).click()
        page.wait_for_url(f"{server.url}/runs/*")
        page.locator("#run-status", has_text="running").wait_for(timeout=30_000)
        page.screenshot(path=str(shots / "04-run-running.png"), full_page=True)
        page.get_by_role("button", name="Cancel run").click()
        page.locator("#stream-state", has_text="finished: cancelled").wait_for(timeout=30_000)
        run_id = int(page.url.rsplit("/", 1)[1])
        assert svc.get_run(run_id)["status"] == "cancelled"
        page.screenshot(path=str(shots / "05-run-cancelled.png"), full_page=True)

        # phone width: the dashboard and the task list stay usable
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.context.add_cookies(page.context.cookies())
        phone.goto(f"{server.url}/")
        phone.screenshot(path=str(shots / "06-phone-dashboard.png"), full_page=True)
        phone.goto(f"{server.url}/tasks")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 400
        phone.screenshot(path=str(shots / "07-phone-tasks.png"), full_page=True)

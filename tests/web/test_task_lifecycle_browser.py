"""A task's whole life in real headless Chromium, in a browser whose clock is in New York.

An admin creates a health check from /tasks/new, picking the service from the inventory; sees its
next slots in the task's own zone (Europe/Zagreb) with how far away they are; runs it and watches
its log stream; reruns it; silences its alerts for an hour; clones it; deletes it.
Screenshots go to ``artifacts/ui/``.
"""

from __future__ import annotations

import socket

import pytest
from _env import LiveServer
from _ui import shown_and_expected_times

from support.servers import free_port
from upkeep.app.alerts import list_silences
from upkeep.errors import NotFound
from upkeep.store.records import CONFIG_DOMAIN, Records

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_create_run_rerun_silence_and_delete_a_task_from_the_ui(api, browser, artifacts_dir):
    shots = artifacts_dir / "ui"
    shots.mkdir(parents=True, exist_ok=True)
    web, api_port = free_port(), free_port()
    services = {"web": {"type": "tcp", "port": web}, "api": {"type": "tcp", "port": api_port}}
    Records(api.store, CONFIG_DOMAIN).put("targets", {"services": services})
    listener = socket.create_server(("127.0.0.1", web))
    try:
        with LiveServer(api, engine=True) as server:
            context = browser.new_context(timezone_id="America/New_York", viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.set_default_timeout(20_000)
            page.on("dialog", lambda dialog: dialog.accept())
            page.goto(f"{server.url}/tasks")
            page.get_by_label("API key").fill(api.tokens["admin"])
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{server.url}/tasks")

            # create it with the pickers the handler's model gives
            page.get_by_role("link", name="New task").click()
            page.get_by_label("Handler type").select_option("health.check")
            page.get_by_role("button", name="Show its fields").click()
            page.get_by_label("Name").fill("web-health")
            page.get_by_label("Schedule").fill("0 3 * * 0")
            page.get_by_label("Time zone").fill("Europe/Zagreb")
            services_picker = page.get_by_role("group", name="Services")
            assert services_picker.get_by_role("checkbox").count() == 2  # the inventory's services
            services_picker.get_by_label("web").check()
            page.screenshot(path=str(shots / "task-new.png"), full_page=True)
            page.get_by_role("button", name="Create task").click()
            page.wait_for_url(f"{server.url}/tasks/web-health")
            task = api.upkeep.get_task("web-health")
            assert (task["config"], task["timezone"], task["managed_by"]) == (
                {"services": ["web"]},
                "Europe/Zagreb",
                "api",
            )

            # its next slots in its own zone, whatever the browser's
            slots = page.locator("ol.times time")
            assert slots.count() == 5
            shown, expected = shown_and_expected_times(slots, "Europe/Zagreb")
            assert shown == expected and all(" 03:00:00 " in text for text in shown), shown
            assert page.locator("ol.times .rel").first.inner_text().startswith("in ")

            # run it and watch the log stream; then rerun it
            page.get_by_role("button", name="Run now").click()
            page.get_by_role("dialog").get_by_role("button", name="Run", exact=True).click()
            page.wait_for_url(f"{server.url}/runs/*")
            first = int(page.url.rsplit("/", 1)[1])
            page.locator("#stream-state", has_text="finished: completed").wait_for(timeout=60_000)
            assert page.locator("#run-log li").count() >= 1
            assert page.locator("#run-progress-message").inner_text() == ""
            page.get_by_role("button", name="Rerun").click()
            page.wait_for_url(lambda url: url.rsplit("/", 1)[1] not in (str(first), ""))
            page.locator("#stream-state", has_text="finished: completed").wait_for(timeout=60_000)
            rerun = api.upkeep.get_run(int(page.url.rsplit("/", 1)[1]))
            assert (rerun["task_name"], rerun["outcome"], rerun["triggered_by"]) == (
                "web-health",
                "ok",
                "key:admin-key",
            )
            page.screenshot(path=str(shots / "task-rerun.png"), full_page=True)

            # silence its alerts for an hour
            page.goto(f"{server.url}/alerts")
            page.get_by_label("Task").fill("web-health")
            page.get_by_label("For").select_option("3600")
            page.get_by_label("Reason").fill("moving the web server")
            page.get_by_role("button", name="Add silence").click()
            page.locator("[data-silence] code", has_text="task=web-health").wait_for()
            [silence] = list_silences(api.store)
            assert (silence["match"], silence["reason"]) == ({"task": "web-health"}, "moving the web server")

            # clone it (nothing host-scoped inline: the form, prefilled), then delete the original
            page.goto(f"{server.url}/tasks/web-health")
            page.get_by_role("link", name="Clone").click()
            assert page.get_by_label("Name").input_value() == "web-health-copy"
            assert page.get_by_role("group", name="Services").get_by_label("web").is_checked()
            page.goto(f"{server.url}/tasks/web-health")
            page.get_by_role("button", name="Delete").click()
            page.wait_for_url(f"{server.url}/tasks")
            with pytest.raises(NotFound):
                api.upkeep.get_task("web-health")
            context.close()
    finally:
        listener.close()


def test_durations_are_typed_with_a_unit_or_read_back_as_you_type(api, browser):
    """A number of seconds entered as 2 min is saved as 120 and shown again as 2 min; a duration
    written as text says what it reads (or that it is not one) while it is typed."""
    with LiveServer(api) as server:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(20_000)
        page.goto(f"{server.url}/tasks/new?type=logs.analyze")
        page.get_by_label("API key").fill(api.tokens["admin"])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{server.url}/tasks/new?type=logs.analyze")
        window = page.locator("#f-config-window")
        window.fill("1h30m")
        page.locator("#f-config-window-reads", has_text="= 1 h 30 min").wait_for()
        window.fill("90 minutes")
        page.locator("#f-config-window-reads.bad", has_text="Not a duration").wait_for()
        window.fill("all")
        page.locator("#f-config-window-reads", has_text="= all").wait_for()

        page.goto(f"{server.url}/tasks/new?type=debug.sleep")
        page.get_by_label("Name").fill("nap")
        page.get_by_role("spinbutton", name="Seconds").fill("2")
        page.get_by_label("Unit of seconds").select_option("min")
        page.get_by_role("button", name="Create task").click()
        page.wait_for_url(f"{server.url}/tasks/nap")
        assert api.upkeep.get_task("nap")["config"] == {"seconds": 120}
        assert page.get_by_role("spinbutton", name="Seconds").input_value() == "2"
        assert page.get_by_label("Unit of seconds").input_value() == "60.0"

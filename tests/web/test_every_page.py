"""Every page of the admin UI, in real headless Chromium, with real content: screenshots at 1400 px
and 390 px (``artifacts/ui/pages``), no horizontal overflow and no axe-core WCAG 2.1 A/AA violation.

The content is what makes pages wide: a failed run whose error is a long path, a run that found
something critical, a procedure, charts with runs of every kind, a heartbeat, an open alert, a
channel whose test failed and a message pending its retry.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime

import pytest
from _env import LiveServer
from _ui import check_page, shown_and_expected_times

from support.people import finished
from support.servers import free_port
from upkeep.app import Upkeep
from upkeep.app.notifications import send_channel_test
from upkeep.heartbeats.monitors import create_heartbeat
from upkeep.notify import alerts, outbox
from upkeep.notify.alerter import Alerter
from upkeep.notify.channels import load_channels
from upkeep.people import accounts
from upkeep.store.records import CONFIG_DOMAIN, Records

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PASSWORD = "a long admin password"
NEW_YORK = r" (EST|EDT|GMT-[45])$"  # the browser's name for the zone, in winter or in summer time
LONG_PATH = "/var/lib/upkeep/backups/" + "very-long-directory-name-without-any-break/" * 6 + "dump.sql.zst"


def _seed(api, tmp_path) -> dict[str, int]:
    setup = Upkeep(api.settings, api.store, trusted=True)  # as upkeep.yaml makes tasks
    app_db = tmp_path / "app.db"
    with sqlite3.connect(app_db) as db:
        db.execute("create table t (x)")
    setup.create_task(
        {
            "name": "nightly-backup",
            "type": "backup.create",
            "schedule": "0 3 * * 0",
            "timezone": "Europe/Zagreb",
            "config": {"source": {"type": "sqlite", "name": "app", "path": str(app_db)}, "destination": str(tmp_path)},
        },
        actor="test",
    )
    Records(api.store, CONFIG_DOMAIN).put(
        "targets",
        {
            "services": {"web": {"type": "tcp", "port": free_port()}},
            "logs": {"api": {"paths": [LONG_PATH]}},
        },
    )
    setup.create_task(
        {
            "name": "app-health",
            "type": "health.check",
            "config": {"services": ["web"], "checks": [{"type": "tcp", "port": free_port()}]},
        },
        actor="test",
    )
    setup.create_task(
        {
            "name": "broken",
            "type": "debug.fail",
            "schedule": "@every 1h",
            "config": {"message": f"cannot open {LONG_PATH}"},
        },
        actor="test",
    )
    setup.create_task({"name": "nap", "type": "debug.sleep", "config": {"seconds": 0.1}}, actor="test")
    with api.store.write() as s:
        alerts.open_alert(
            s,
            subject="broken",
            task_name="broken",
            kind="failure",
            title="[upkeep] CRITICAL broken: failed",
            body=f"cannot open {LONG_PATH}",
            run_id=None,
            note="",
            escalate=[],
            now=datetime.now(UTC),
        )
    create_heartbeat(api.store, {"name": "cron-job", "schedule": "@every 1h"}, actor="test", now=datetime.now(UTC))
    closed = free_port()  # a channel whose server is down: a failed test, a message pending its retry
    Records(api.store, CONFIG_DOMAIN).put(
        "channels", {"ops-webhook": {"url": f"json://127.0.0.1:{closed}/{LONG_PATH}", "timeout": 5}}
    )
    send_channel_test(api.store, "ops-webhook", actor="test")
    with api.store.write() as s:
        note = outbox.Notification(task="broken", channel="ops-webhook", kind="failure", title=LONG_PATH, body="failed")
        outbox.enqueue(s, note, datetime.now(UTC))
    outbox.deliver(api.store, load_channels(api.store), datetime.now(UTC))
    accounts.create_user(api.store, name="root-admin", role="admin", password=PASSWORD, actor="test")
    return {"setup": setup}


def test_every_page_fits_a_phone_and_passes_axe(api, browser, artifacts_dir, tmp_path):
    shots = artifacts_dir / "ui" / "pages"
    setup = _seed(api, tmp_path)["setup"]
    with LiveServer(api, engine=True) as server:
        runs = {
            t: finished(setup, setup.trigger(t, actor="test")["id"]) for t in ("nightly-backup", "app-health", "broken")
        }
        finished(setup, setup.trigger("nap", actor="test")["id"])
        Alerter(api.store, api.settings).evaluate_once()  # the targets' states, as `upkeep serve` keeps them
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(20_000)
        page.goto(f"{server.url}/login")
        page.get_by_label("Name").fill("root-admin")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{server.url}/")
        pages = {
            "dashboard": "/",
            "tasks": "/tasks",
            "task": "/tasks/nightly-backup",
            "task-failing": "/tasks/broken",
            "task-new": "/tasks/new?type=health.check",
            "task-clone-yaml": "/tasks/new?from=nightly-backup",
            "runs": "/runs",
            "run-completed": f"/runs/{runs['nightly-backup']['id']}",
            "run-critical": f"/runs/{runs['app-health']['id']}",
            "run-failed": f"/runs/{runs['broken']['id']}",
            "alerts": "/alerts",
            "backups": "/backups",
            "targets": "/targets",
            "heartbeats": "/heartbeats",
            "heartbeat": "/heartbeats/cron-job",
            "checklists": "/checklists",
            "audit": "/audit",
            "handlers": "/handlers",
            "keys": "/keys",
            "users": "/users",
            "account": "/account",
        }
        problems = []
        for name, path in pages.items():
            problems += check_page(page, server.url + path, name, shots)
        page.context.clear_cookies()
        problems += check_page(page, f"{server.url}/login", "login", shots)
        assert not problems, "\n".join(problems)


def test_times_carry_their_zone_in_a_browser_elsewhere_and_a_new_key_is_listed_at_once(api, browser):
    """A browser in New York signed in with a key: times in UTC until it picks its own zone (kept
    for the next page); a schedule's next slots stay in the task's zone. A created key shows up
    in the list without a reload."""
    api.upkeep.create_task(
        {"name": "weekly", "type": "debug.noop", "schedule": "0 3 * * 0", "timezone": "Europe/Zagreb"}, actor="test"
    )
    with LiveServer(api) as server:
        context = browser.new_context(timezone_id="America/New_York", viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(f"{server.url}/keys")
        page.get_by_label("API key").fill(api.tokens["admin"])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{server.url}/keys")
        created = page.locator("#keys-list td[data-label='Created'] time").first
        assert created.inner_text().endswith(" UTC")

        page.get_by_label("Name").fill("ci-runner")
        page.get_by_role("button", name="Create key").click()
        page.locator("#keys-list td", has_text="ci-runner").wait_for()
        assert page.locator("#new-token .token").inner_text().startswith("upk_")

        page.get_by_label("Times in").select_option("America/New_York")
        assert re.search(NEW_YORK, created.inner_text())
        page.goto(f"{server.url}/tasks/weekly")
        slots = page.locator("ol.times time")
        assert slots.count() == 5
        shown, expected = shown_and_expected_times(slots, "Europe/Zagreb")
        assert shown == expected and all(" 03:00:00 " in text for text in shown), shown
        assert page.locator("ol.times .rel").first.inner_text().startswith("in ")
        page.goto(f"{server.url}/keys")  # the choice is kept for the next page
        assert re.search(NEW_YORK, created.inner_text())
        context.close()

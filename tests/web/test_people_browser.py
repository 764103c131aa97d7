"""People in real headless Chromium against a real server with the executor and scheduler.

A person signs in with name and password, enrols an authenticator app from a QR code the server
renders (the page fetches nothing from anywhere else), signs in again with a code, chooses a time
zone, and signs off a weekly checklist: an automatic item was filled by a real backup, another
stays open because the health task found its service down; they check the manual items, skip the
failing one with a reason, and the checklist completes with outcome warning.
Screenshots go to ``artifacts/ui/``.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from _env import LiveServer

from support.people import finished
from support.servers import free_port
from upkeep.app import Upkeep
from upkeep.people import accounts, checklists, totp

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PASSWORD = "alice's long password"


def test_a_person_enrols_totp_and_signs_off_a_checklist_in_a_real_browser(api, browser, artifacts_dir, tmp_path):
    shots = artifacts_dir / "ui"
    shots.mkdir(parents=True, exist_ok=True)
    setup = Upkeep(api.settings, api.store, trusted=True)  # as upkeep.yaml makes tasks
    app_db = tmp_path / "app.db"
    with sqlite3.connect(app_db) as db:
        db.execute("create table t (x)")
    setup.create_task(
        {
            "name": "nightly-backup",
            "type": "backup.create",
            "config": {"source": {"type": "sqlite", "name": "app", "path": str(app_db)}, "destination": str(tmp_path)},
        },
        actor="test",
    )
    setup.create_task(
        {"name": "app-health", "type": "health.check", "config": {"checks": [{"type": "tcp", "port": free_port()}]}},
        actor="test",
    )
    items = [{"text": t} for t in ("Security logs reviewed", "Firewall rules checked", "User access reviewed")]
    items += [
        {"text": "Backup succeeded", "task": "nightly-backup", "within": "26h"},
        {"text": "App is healthy", "task": "app-health", "within": "26h"},
    ]
    setup.create_task(
        {"name": "weekly-review", "type": "checklist.run", "schedule": "0 9 * * 1", "config": {"items": items}},
        actor="test",
    )
    accounts.create_user(api.store, name="alice", role="operator", password=PASSWORD, actor="test")

    with LiveServer(api, engine=True) as server:
        for task in ("nightly-backup", "app-health", "weekly-review"):
            finished(setup, setup.trigger(task, actor="test")["id"])
        [opened] = checklists.list_checklists(api.store)[0]
        assert opened["items_done"] == 1  # the backup's item, filled automatically

        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(20_000)
        elsewhere = []
        page.on("request", lambda r: None if r.url.startswith(server.url) else elsewhere.append(r.url))

        # sign in with name and password
        page.goto(f"{server.url}/account")
        page.get_by_label("Name").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{server.url}/account")

        # enrol an authenticator app from the QR code, confirm with its code
        page.get_by_role("button", name="Enrol an authenticator app").click()
        page.locator("#totp-qr svg path").wait_for()
        secret = page.locator("#totp-secret").inner_text()
        page.screenshot(path=str(shots / "10-totp-enrolment.png"), full_page=True)
        page.get_by_label("Code from the app").fill(totp.code_at(secret, datetime.now(UTC)))
        page.get_by_role("button", name="Confirm").click()
        page.get_by_text("An authenticator app is enrolled").wait_for()
        assert accounts.get_user(api.store, "alice")["totp"] is True

        # the time zone preference: times on every page are shown in it
        page.get_by_label("Time zone").select_option("Asia/Tokyo")
        page.get_by_role("button", name="Save preferences").click()
        page.wait_for_load_state("load")
        page.locator('meta[name="timezone"][content="Asia/Tokyo"]').wait_for(state="attached")

        # sign out; a password alone no longer signs in, with the next code it does
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(f"{server.url}/login")
        page.get_by_label("Name").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("alert").filter(has_text="name, password or code is wrong").wait_for()
        page.get_by_label("Name").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        next_code = totp.code_at(secret, datetime.now(UTC) + timedelta(seconds=30))  # enrolment spent this step's
        page.get_by_label("Code from your authenticator app").fill(next_code)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{server.url}/")

        # the checklist: the backup's item is filled, the health item stays open with its reason
        page.get_by_role("link", name="Checklists").click()
        page.get_by_role("link", name=f"#{opened['id']} weekly-review").click()
        page.locator("#item-4", has_text="Checked by task:nightly-backup").wait_for()
        page.locator("#item-5", has_text="outcome critical").wait_for()
        shown = page.locator("#item-4 time")  # rendered in Tokyo time, the person's zone
        assert shown.inner_text().endswith(" JST")
        page.screenshot(path=str(shots / "11-checklist-open.png"), full_page=True)

        page.get_by_label("Note, or the reason for a skip (item 1)").fill("nothing unusual")
        page.get_by_role("button", name="Check item 1").click()
        page.locator("#item-1", has_text="Checked by user:alice").wait_for()
        for position in (2, 3):
            page.get_by_role("button", name=f"Check item {position}").click()
            page.locator(f"#item-{position}", has_text="Checked by user:alice").wait_for()
        page.get_by_role("button", name="Skip item 5").click()  # without a reason: refused in the page
        page.locator("#item-5 .form-error", has_text="Say why").wait_for()
        page.get_by_label("Note, or the reason for a skip (item 5)").fill("the app is being replaced")
        page.get_by_role("button", name="Skip item 5").click()
        page.locator("#checklist-status", has_text="completed · warning").wait_for()
        page.screenshot(path=str(shots / "12-checklist-completed.png"), full_page=True)

    done = checklists.get_checklist(api.store, opened["id"])
    assert (done["status"], done["outcome"]) == ("completed", "warning")
    assert [(i["state"], i["by"], i["note"]) for i in done["items"]] == [
        ("checked", "user:alice", "nothing unusual"),
        ("checked", "user:alice", None),
        ("checked", "user:alice", None),
        ("checked", "task:nightly-backup", None),
        ("skipped", "user:alice", "the app is being replaced"),
    ]
    assert elsewhere == []  # the QR code and every asset came from the server itself

"""Backups, targets and reruns in real headless Chromium against a real server with its executor.

An operator verifies a backup from /backups and watches the verification run, reruns it from the
run page; a service goes down and comes back, and /targets says so with the time it changed.
Screenshots go to ``artifacts/ui/``.
"""

from __future__ import annotations

import socket
import sqlite3

import pytest
from _env import LiveServer

from support.people import finished
from support.servers import free_port
from upkeep.app import Upkeep
from upkeep.handlers.backup import catalog
from upkeep.notify.alerter import Alerter
from upkeep.store.records import CONFIG_DOMAIN, Records

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _sign_in(page, server, api, path: str) -> None:
    page.goto(f"{server.url}{path}")
    page.get_by_label("API key").fill(api.tokens["operator"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}{path}")


def test_verify_a_backup_from_the_backups_page_and_rerun_the_verification(api, browser, artifacts_dir, tmp_path):
    shots = artifacts_dir / "ui"
    shots.mkdir(parents=True, exist_ok=True)
    setup = Upkeep(api.settings, api.store, trusted=True)  # as upkeep.yaml makes tasks
    app_db = tmp_path / "app.db"
    with sqlite3.connect(app_db) as db:
        db.execute("create table t (x)")
        db.execute("insert into t values (1), (2)")
    setup.create_task(
        {
            "name": "nightly-backup",
            "type": "backup.create",
            "config": {"source": {"type": "sqlite", "name": "app", "path": str(app_db)}, "destination": str(tmp_path)},
        },
        actor="test",
    )
    with LiveServer(api, engine=True) as server:
        assert finished(setup, setup.trigger("nightly-backup", actor="test")["id"])["status"] == "completed"
        [entry] = catalog.entries(Records(api.store, catalog.DOMAIN), "app")
        assert entry["status"] == "created"

        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(20_000)
        _sign_in(page, server, api, "/backups")
        row = page.locator('tr[data-source="app"]')
        row.get_by_text("no verified backup").wait_for()
        row.get_by_role("button", name=f"Verify {entry['id'][:19]}").click()
        page.wait_for_url(f"{server.url}/runs/*")
        page.locator("#stream-state", has_text="finished: completed").wait_for(timeout=60_000)
        verify_run = int(page.url.rsplit("/", 1)[1])
        assert api.upkeep.get_run(verify_run)["task_type"] == "backup.verify"
        [entry] = catalog.entries(Records(api.store, catalog.DOMAIN), "app")
        assert entry["status"] == "verified"

        # the run page offers a rerun once the run has ended: a new run of the same config
        page.get_by_role("button", name="Rerun").click()
        page.wait_for_url(lambda url: url.rstrip("/").rsplit("/", 1)[1] not in (str(verify_run), ""))
        rerun = int(page.url.rsplit("/", 1)[1])
        assert rerun != verify_run
        page.locator("#stream-state", has_text="finished: completed").wait_for(timeout=60_000)
        again = api.upkeep.get_run(rerun)
        assert (again["task_type"], again["config"]) == ("backup.verify", api.upkeep.get_run(verify_run)["config"])

        page.goto(f"{server.url}/backups")
        row.locator('[data-within-rpo="true"]').wait_for()
        page.screenshot(path=str(shots / "backups-verified.png"), full_page=True)


def test_a_target_goes_down_and_up_on_the_targets_page(api, browser, artifacts_dir):
    shots = artifacts_dir / "ui"
    shots.mkdir(parents=True, exist_ok=True)
    port = free_port()
    Records(api.store, CONFIG_DOMAIN).put("targets", {"services": {"web": {"type": "tcp", "port": port}}})
    setup = Upkeep(api.settings, api.store, trusted=True)
    setup.create_task({"name": "web-health", "type": "health.check", "config": {"services": ["web"]}}, actor="test")
    alerter = Alerter(api.store, api.settings)  # records each target's check, as in `upkeep serve`

    def check(outcome: str) -> None:
        assert finished(setup, setup.trigger("web-health", actor="test")["id"])["outcome"] == outcome
        alerter.evaluate_once()

    listener = socket.create_server(("127.0.0.1", port))
    try:
        with LiveServer(api, engine=True) as server:
            check("ok")
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(20_000)
            _sign_in(page, server, api, "/targets")
            state = page.locator('tr[data-target="services.web"] [data-state]')
            assert (state.get_attribute("data-state"), state.inner_text()) == ("ok", "up")
            up_since = page.locator('tr[data-target="services.web"] td[data-label="Since"] time').get_attribute(
                "datetime"
            )

            listener.close()
            check("critical")
            page.reload()
            assert (state.get_attribute("data-state"), state.inner_text()) == ("critical", "down")
            since = page.locator('tr[data-target="services.web"] td[data-label="Since"] time')
            down_since = since.get_attribute("datetime")
            assert down_since > up_since
            page.screenshot(path=str(shots / "targets-down.png"), full_page=True)

            listener = socket.create_server(("127.0.0.1", port))
            check("ok")
            page.reload()
            assert (state.get_attribute("data-state"), state.inner_text()) == ("ok", "up")
            assert since.get_attribute("datetime") > down_since
    finally:
        listener.close()

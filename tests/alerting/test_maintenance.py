"""Maintenance-aware muting: a real backup (pg_dump of a throwaway PostgreSQL database) that affects a
real HTTP service; the service's failing checks during the backup and its settle time alert nobody,
and a failure that outlasts them alerts once, naming the backup run."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from alerting_world import delivered
from notify_receivers import HttpReceiver

from upkeep.app.alerts import list_alerts, targets_overview

SETTLE = 5  # seconds: long enough for one check right after the backup, short enough to wait out

CONFIG = """\
targets:
  databases:
    main: {{url: "{dsn}"}}
  services:
    api: {{type: http, url: "http://127.0.0.1:{api_port}/health", timeout: 5}}
tasks:
  - name: nightly-backup
    type: backup.create
    config: {{source: main, destination: "{backups}"}}
    notify: {{channels: [email, hook]}}
{affects}
  - name: health
    type: health.check
    config: {{services: [api]}}
    notify: {{channels: [email, hook]}}
"""


@pytest.fixture
def api():
    """The service the backup disturbs: a real HTTP server whose answer the test sets."""
    server = HttpReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def shop(pg_server):
    name = pg_server.create_database()
    pg_server.psql("create table orders(id int primary key, total numeric); insert into orders values (1, 9.5)", name)
    yield pg_server.dsn(name)
    pg_server.drop_database(name)


def _apply(world, api, shop, affects: str) -> None:
    world.apply(
        CONFIG.format(dsn=shop, api_port=api.port, backups=world.tmp_path / "backups", affects=affects),
    )
    world.evaluate()  # the alerter's cursor starts here


def test_a_backup_that_affects_the_api_holds_its_failures_then_one_alert_names_it(world, api, shop):
    _apply(world, api, shop, f"    affects: {{services: [api], settle: {SETTLE}s}}")
    backup = world.trigger("nightly-backup")
    claimed = world.claim(backup)  # the backup is running
    api.status = 503  # and the API suffers from it
    during = f"during maintenance: run {backup} of task nightly-backup"

    world.run("health")
    notes = world.evaluate()
    assert delivered(notes) == []
    assert [(n.task, n.status, n.error) for n in notes] == [("target/services.api", "held", during)]
    [api_target] = [t for t in targets_overview(world.store) if t["target"] == "services.api"]
    assert (api_target["status"], api_target["note"]) == ("critical", during)
    assert api_target["maintenance"] == f"in maintenance: run {backup} of task nightly-backup"

    assert world.execute(claimed) == "completed"  # a real pg_dump of the database
    assert world.service.get_run(backup)["outcome"] == "ok"
    world.run("health")  # within the settle time after the backup
    assert delivered(world.evaluate()) == []
    assert world.smtp.messages == [] and world.posts("/hook") == []

    settled = world.finished_at(backup) + timedelta(seconds=SETTLE)
    time.sleep(max(0.0, (settled - datetime.now(UTC)).total_seconds()) + 0.2)
    check = world.run("health")  # still failing after the settle time
    assert delivered(world.evaluate()) == [("email", "outcome", "sent"), ("hook", "outcome", "sent")]
    [mail] = world.smtp.messages
    assert mail.subject.startswith("[upkeep] CRITICAL services.api: HTTP 503")
    assert f"Still failing after maintenance: run {backup} of task nightly-backup" in mail.body
    assert f"https://upkeep.example.com/runs/{check}" in mail.body
    [hook] = world.posts("/hook")
    assert hook["title"] == mail.subject
    [alert] = list_alerts(world.store)
    assert (alert["subject"], alert["state"]) == ("target/services.api", "open")
    assert alert["note"] == f"after maintenance: run {backup} of task nightly-backup"

    world.run("health")  # failing on: no second alert
    assert delivered(world.evaluate()) == []
    assert len(world.smtp.messages) == 1 and len(world.posts("/hook")) == 1


def test_without_affects_the_same_failure_alerts_at_once(world, api, shop):
    _apply(world, api, shop, "")
    backup = world.trigger("nightly-backup")
    claimed = world.claim(backup)
    api.status = 503

    world.run("health")
    assert delivered(world.evaluate()) == [("email", "outcome", "sent"), ("hook", "outcome", "sent")]
    [mail] = world.smtp.messages
    assert mail.subject.startswith("[upkeep] CRITICAL services.api: HTTP 503")
    assert "maintenance" not in mail.body
    assert world.execute(claimed) == "completed"


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_a_lock_on_db_name_affects_that_database_target_and_nothing_else(world, api):
    """A task holding ``db:main`` affects ``databases.main`` without saying so; the service it does
    not affect alerts at once from the same health check run."""
    world.apply(
        f"""\
        targets:
          databases:
            main: {{url: "postgresql://upkeep@127.0.0.1:1/app"}}
          services:
            api: {{type: http, url: "http://127.0.0.1:{api.port}/health", timeout: 5}}
        tasks:
          - {{name: reindex, type: debug.sleep, config: {{seconds: 0}}, locks: ["db:main"]}}
          - {{name: other-lock, type: debug.sleep, config: {{seconds: 0}}, locks: ["db:elsewhere"]}}
          - name: health
            type: health.check
            config: {{services: [api], databases: [main], timeout: 3}}
            notify: {{channels: [hook]}}
        """
    )
    world.evaluate()
    reindex = world.trigger("reindex")
    claimed = world.claim(reindex)
    world.claim(world.trigger("other-lock"))
    api.status = 500

    world.run("health")
    notes = world.evaluate()
    assert delivered(notes) == [("hook", "outcome", "sent")]
    assert world.posts("/hook")[0]["title"].startswith("[upkeep] CRITICAL services.api: HTTP 500")
    assert [(n.task, n.error) for n in notes if n.status == "held"] == [
        ("target/databases.main", f"during maintenance: run {reindex} of task reindex")
    ]
    world.execute(claimed)

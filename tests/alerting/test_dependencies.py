"""Target dependencies: five HTTP services that really query a PostgreSQL server (their own throwaway
cluster) depend on it. The server going down makes one alert listing the five; when it comes back
while one service still fails (its own bug), that service alerts once, on its own."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from alerting_world import delivered

from support.servers import free_port, start_postgres
from upkeep.app.alerts import list_alerts, targets_overview

SERVICES = [f"svc{i}" for i in range(1, 6)]


class DatabaseBackedServices:
    """``GET /svcN`` answers 200 when a ``SELECT 1`` on the database works, 503 when it does not,
    and 500 for the services in ``broken``."""

    def __init__(self, dsn: str):
        self.dsn, self.broken = dsn, set()
        services = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.strip("/")
                status = 500 if name in services.broken else (200 if services.database_answers() else 503)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def database_answers(self) -> bool:
        try:
            with psycopg.connect(self.dsn, connect_timeout=2) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)
        except psycopg.Error:
            return False

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def database():
    server = start_postgres()
    yield server
    server.remove()


@pytest.fixture
def services(database):
    running = DatabaseBackedServices(database.dsn())
    yield running
    running.stop()


def _config(database, services, *, split: bool = False) -> str:
    entries = "\n".join(
        f'    {name}: {{type: http, url: "http://127.0.0.1:{services.port}/{name}", timeout: 5, '
        "depends_on: [databases.main]}"
        for name in SERVICES
    )
    checks = (
        """\
  - name: health
    type: health.check
    config: {services: [svc1, svc2, svc3, svc4, svc5], databases: [main], timeout: 5}
    notify: {channels: [email, hook]}
"""
        if not split
        else """\
  - name: health-db
    type: health.check
    config: {services: [], databases: [main], timeout: 5}
    notify: {channels: [email, hook]}
  - name: health
    type: health.check
    config: {services: [svc1, svc2, svc3, svc4, svc5], timeout: 5}
    notify: {channels: [email, hook]}
"""
    )
    return f"""\
targets:
  databases:
    main: {{url: "{database.dsn()}"}}
  services:
{entries}
tasks:
{checks}"""


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_a_parent_down_alerts_once_listing_its_five_children_then_a_child_still_failing_alerts_alone(
    world, database, services
):
    world.apply(_config(database, services))
    world.evaluate()
    world.run("health")
    assert delivered(world.evaluate()) == []  # all up

    database.stop()
    assert not services.database_answers()
    world.run("health")
    notes = world.evaluate()
    assert delivered(notes) == [("email", "outcome", "sent"), ("hook", "outcome", "sent")]
    held = sorted((n.task, n.error) for n in notes if n.status == "held")
    assert held == [(f"target/services.{s}", "because databases.main is down") for s in SERVICES]
    [mail] = world.smtp.messages
    assert mail.subject.startswith("[upkeep] CRITICAL databases.main: cannot query PostgreSQL")
    assert mail.subject.endswith("(+5 dependent targets failing)")
    assert "Also failing because databases.main is down (5):" in mail.body
    assert all(f"- services.{s}" in mail.body for s in SERVICES)
    [alert] = list_alerts(world.store)
    assert alert["subject"] == "target/databases.main"
    assert alert["dependents"] == [f"services.{s}" for s in SERVICES]
    notes_of = {t["target"]: t["note"] for t in targets_overview(world.store)}
    assert notes_of["services.svc1"] == "because databases.main is down"

    world.run("health")  # still down: nothing more
    assert delivered(world.evaluate()) == []

    services.broken.add("svc3")  # a bug of its own
    database.start()
    assert services.database_answers()
    world.run("health")
    notes = world.evaluate()
    assert delivered(notes) == [
        ("email", "outcome", "sent"),
        ("email", "recovery", "sent"),
        ("hook", "outcome", "sent"),
        ("hook", "recovery", "sent"),
    ]
    titles = sorted(m.subject for m in world.smtp.messages[1:])
    assert titles[0] == "[upkeep] CRITICAL services.svc3: HTTP 500: expected 2xx"
    assert titles[1] == "[upkeep] RESOLVED databases.main: ok again"
    world.run("health")
    assert delivered(world.evaluate()) == []  # that child alerted once
    states = {a["subject"]: a["state"] for a in list_alerts(world.store)}
    assert states == {"target/databases.main": "resolved", "target/services.svc3": "open"}


def test_a_parent_checked_by_another_task_holds_its_childrens_failures_too(world, database, services):
    world.apply(_config(database, services, split=True))
    world.evaluate()
    database.stop()
    world.run("health-db")
    assert delivered(world.evaluate()) == [("email", "outcome", "sent"), ("hook", "outcome", "sent")]
    world.run("health")
    notes = world.evaluate()
    assert delivered(notes) == []
    assert len([n for n in notes if n.error == "because databases.main is down"]) == 5
    [alert] = list_alerts(world.store)
    assert alert["dependents"] == [f"services.{s}" for s in SERVICES]
    database.start()
    world.run("health-db")
    assert [n.kind for n in world.evaluate() if n.status == "sent"] == ["recovery", "recovery"]
    world.run("health")
    assert delivered(world.evaluate()) == []  # the children recovered with their parent: nothing to say

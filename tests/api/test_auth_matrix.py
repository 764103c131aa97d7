"""Every route of the application × {no key, viewer, operator, admin}: 401/403/2xx as specified.

The route list comes from the app itself, so a new route without an entry in ``REQUIRED`` fails
the test until someone decides who may call it. Changes must write an audit entry naming the key;
configured secrets must never appear in any response or page.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from starlette.routing import Mount

from support.people import page_csrf, sign_in
from upkeep.auth import create_key
from upkeep.engine.lifecycle import append_event
from upkeep.heartbeats.monitors import create_heartbeat, set_paused
from upkeep.people.accounts import create_user, set_enabled
from upkeep.people.checklists import NewItem, open_checklist
from upkeep.store.models import Run
from upkeep.store.records import Records

OPEN, PAGE, PERSON = "open", "page", "person"
# (method, path) -> role needed. "open": anyone; ("page", role): an HTML page (no login -> /login);
# ("person", role): a person signed in with their account, never a key (tests/people test them).
REQUIRED: dict[tuple[str, str], object] = {
    ("GET", "/api/v1/scheduled-tasks"): "viewer",
    ("POST", "/api/v1/scheduled-tasks"): "admin",
    ("GET", "/api/v1/scheduled-tasks/{ref}"): "viewer",
    ("PATCH", "/api/v1/scheduled-tasks/{ref}"): "admin",
    ("DELETE", "/api/v1/scheduled-tasks/{ref}"): "admin",
    ("POST", "/api/v1/scheduled-tasks/{ref}/enable"): "operator",
    ("POST", "/api/v1/scheduled-tasks/{ref}/disable"): "operator",
    ("POST", "/api/v1/scheduled-tasks/{ref}/run"): "operator",
    ("GET", "/api/v1/scheduled-tasks/{ref}/runs"): "viewer",
    ("GET", "/api/v1/runs"): "viewer",
    ("GET", "/api/v1/runs/{run_id}"): "viewer",
    ("GET", "/api/v1/runs/{run_id}/events"): "viewer",
    ("GET", "/api/v1/runs/{run_id}/events/stream"): "viewer",
    ("POST", "/api/v1/runs/{run_id}/cancel"): "operator",
    ("POST", "/api/v1/runs/{run_id}/rerun"): "operator",
    ("GET", "/api/v1/backups"): "viewer",
    ("POST", "/api/v1/backups/{source}/verify"): "operator",
    ("POST", "/api/v1/backups/{source}/restore-plan"): "operator",
    ("GET", "/backups"): (PAGE, "viewer"),
    ("GET", "/targets"): (PAGE, "viewer"),
    ("GET", "/api/v1/stats"): "viewer",
    ("GET", "/api/v1/handlers"): "viewer",
    ("GET", "/api/v1/handlers/{name}"): "viewer",
    ("GET", "/api/v1/audit"): "viewer",
    ("GET", "/api/v1/me"): "viewer",
    ("GET", "/api/v1/keys"): "admin",
    ("POST", "/api/v1/keys"): "admin",
    ("DELETE", "/api/v1/keys/{ref}"): "admin",
    ("GET", "/metrics"): "viewer",
    ("GET", "/healthz"): OPEN,
    ("GET", "/favicon.ico"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/openapi.json"): OPEN,
    ("GET", "/docs"): OPEN,
    ("GET", "/docs/oauth2-redirect"): OPEN,
    ("GET", "/login"): OPEN,
    ("POST", "/login"): OPEN,
    ("POST", "/logout"): OPEN,
    ("GET", "/"): (PAGE, "viewer"),
    ("GET", "/tasks"): (PAGE, "viewer"),
    ("GET", "/tasks/{ref}"): (PAGE, "viewer"),
    ("GET", "/tasks/new"): (PAGE, "admin"),
    ("GET", "/runs"): (PAGE, "viewer"),
    ("GET", "/runs/{run_id}"): (PAGE, "viewer"),
    ("GET", "/audit"): (PAGE, "viewer"),
    ("GET", "/handlers"): (PAGE, "viewer"),
    ("GET", "/keys"): (PAGE, "admin"),
    ("GET", "/api/v1/heartbeats"): "viewer",
    ("POST", "/api/v1/heartbeats"): "admin",
    ("GET", "/api/v1/heartbeats/{ref}"): "viewer",
    ("PATCH", "/api/v1/heartbeats/{ref}"): "admin",
    ("DELETE", "/api/v1/heartbeats/{ref}"): "admin",
    ("POST", "/api/v1/heartbeats/{ref}/pause"): "operator",
    ("POST", "/api/v1/heartbeats/{ref}/resume"): "operator",
    ("GET", "/api/v1/heartbeats/{ref}/pings"): "viewer",
    ("GET", "/api/v1/heartbeat-pings/unknown"): "admin",
    ("GET", "/heartbeats"): (PAGE, "viewer"),
    ("GET", "/heartbeats/{ref}"): (PAGE, "viewer"),
    **{(method, f"/ping/{{token}}{suffix}"): OPEN for method in ("GET", "POST") for suffix in ("", "/start", "/fail")},
    ("GET", "/ping/{token}/{exit_status}"): OPEN,
    ("POST", "/ping/{token}/{exit_status}"): OPEN,
    ("GET", "/api/v1/users"): "admin",
    ("POST", "/api/v1/users"): "admin",
    ("POST", "/api/v1/users/{ref}/disable"): "admin",
    ("POST", "/api/v1/users/{ref}/enable"): "admin",
    ("POST", "/api/v1/users/{ref}/reset"): "admin",
    ("PATCH", "/api/v1/me"): (PERSON, "viewer"),
    ("POST", "/api/v1/me/password"): (PERSON, "viewer"),
    ("POST", "/api/v1/me/totp"): (PERSON, "viewer"),
    ("POST", "/api/v1/me/totp/confirm"): (PERSON, "viewer"),
    ("POST", "/api/v1/me/totp/remove"): (PERSON, "viewer"),
    ("GET", "/api/v1/checklists"): "viewer",
    ("GET", "/api/v1/checklists/{checklist_id}"): "viewer",
    ("POST", "/api/v1/checklists/{checklist_id}/items/{position}/check"): (PERSON, "operator"),
    ("POST", "/api/v1/checklists/{checklist_id}/items/{position}/skip"): (PERSON, "operator"),
    ("GET", "/checklists"): (PAGE, "viewer"),
    ("GET", "/checklists/{checklist_id}"): (PAGE, "viewer"),
    ("GET", "/account"): (PAGE, "viewer"),
    ("GET", "/users"): (PAGE, "admin"),
    ("GET", "/api/v1/alerts"): "viewer",
    ("GET", "/api/v1/alerts/{alert_id}"): "viewer",
    ("POST", "/api/v1/alerts/{alert_id}/ack"): "operator",
    ("GET", "/api/v1/silences"): "viewer",
    ("POST", "/api/v1/silences"): "operator",
    ("POST", "/api/v1/silences/{silence_id}/expire"): "operator",
    ("GET", "/api/v1/channels"): "viewer",
    ("POST", "/api/v1/channels/{channel}/test"): "operator",  # sends: to a closed port here
    ("GET", "/api/v1/notifications"): "viewer",
    ("GET", "/alerts"): (PAGE, "viewer"),
    ("GET", "/api/v1/approvals"): "viewer",
    ("POST", "/api/v1/approvals/{approval_id}/approve"): (PERSON, "viewer"),  # and the step's role
    ("POST", "/api/v1/approvals/{approval_id}/reject"): (PERSON, "viewer"),
    ("GET", "/alerts/ack/{link}"): OPEN,  # the signed link is the permission, for one alert
    ("POST", "/alerts/ack/{link}"): OPEN,
}
RANK = {"viewer": 0, "operator": 1, "admin": 2}
SECRETS = ("hunter2", "pingtoken-s3cr3t", "pingpath-s3cr3t", "evt-hunter2", "cfg-hunter2")


def app_routes(app) -> list[tuple[str, str]]:
    """(method, path) of every HTTP route, flattening included routers (FastAPI >= 0.120 keeps
    them nested; ``iter_route_contexts`` walks them)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is flat already
        routes = list(app.routes)
    else:
        routes = list(iter_route_contexts(app.routes))
    out = []
    for route in routes:
        if isinstance(getattr(route, "original_route", route), Mount):
            continue
        methods = getattr(route, "methods", None)
        if methods is None or route.path is None:
            continue
        for method in sorted(methods):
            if method != "HEAD":
                out.append((method, route.path))
    return sorted(set(out))


def seed(api) -> dict:
    """A task, a finished run with events, secrets in the targets, the ping URL, a run's config."""
    svc = api.upkeep
    Records(api.store, "_upkeep").put(
        "targets", {"databases": {"main": {"url": "postgresql://app:hunter2@db.internal/app"}}}
    )
    Records(api.store, "_upkeep").put("channels", {"ops": {"url": "json://ops:hunter2@127.0.0.1:9/hook", "timeout": 5}})
    task = api.post(
        "/api/v1/scheduled-tasks",
        json={
            "name": "sleeper",
            "type": "debug.sleep",
            "schedule": "@every 1h",
            "config": {"seconds": 1},
            "ping_url": "https://hc.example/ping/pingpath-s3cr3t?token=pingtoken-s3cr3t",
        },
    ).json()
    now = datetime.now(UTC)
    with api.store.write() as s:
        run = Run(
            task_id=task["id"],
            task_name="sleeper",
            task_type="debug.sleep",
            status="completed",
            outcome="ok",
            origin="manual",
            config={"seconds": 1, "password": "cfg-hunter2"},
            created_at=now - timedelta(seconds=5),
            due_at=now - timedelta(seconds=5),
            started_at=now - timedelta(seconds=4),
            finished_at=now,
            result={"summary": "done", "url": "postgresql://u:hunter2@h/db"},
            summary="done",
            error="could not reach postgresql://u:hunter2@h/db",
        )
        s.add(run)
        s.flush()
        run_id = run.id
        append_event(s, run_id, "info", "started", "started", None)
        append_event(s, run_id, "info", "connect", "connecting", {"password": "evt-hunter2", "n": 1})
    svc.record_audit("test", "note", "task", "sleeper", after={"ping_url": task["ping_url"]})
    api.post("/api/v1/heartbeats", json={"name": "sleeper", "schedule": "@every 1h"})
    checklist = open_checklist(api.store, title="weekly", items=[NewItem("first"), NewItem("second")])
    backup = {
        "id": "20260101T000000Z",
        "source": "app",
        "type": "sqlite",
        "status": "verified",
        "manifest": {"size": 9},
    }
    Records(api.store, "backup").put("app/20260101T000000Z", {**backup, "created_at": now.isoformat()})
    return {"task": task, "run_id": run_id, "checklist_id": checklist["id"]}


class Caller:
    """Fills a route's path parameters and body, creating fresh objects where a call consumes one."""

    def __init__(self, api, seeded):
        self.api = api
        self.seeded = seeded
        self.counter = itertools.count()

    def fresh_task(self) -> str:
        name = f"victim-{next(self.counter)}"
        self.api.upkeep.create_task({"name": name, "type": "debug.noop"}, actor="test")
        return name

    def fresh_alert(self) -> tuple[int, str]:
        """An open alert and its signed acknowledge link token."""
        from upkeep.notify import alerts

        with self.api.store.write() as s:
            alert = alerts.open_alert(
                s,
                subject=f"victim-alert-{next(self.counter)}",
                task_name="sleeper",
                kind="failure",
                title="[upkeep] CRITICAL sleeper: failed",
                body="",
                run_id=self.seeded["run_id"],
                note="",
                escalate=[],
                now=datetime.now(UTC),
            )
            return alert.id, alerts.link_token(alerts.link_secret(s), alert)

    def fresh_silence(self) -> int:
        from upkeep.app.alerts import create_silence

        until = datetime.now(UTC) + timedelta(hours=1)
        return create_silence(self.api.store, match={"task": "sleeper"}, until=until, actor="test")["id"]

    def fresh_heartbeat(self) -> str:
        name = f"victim-hb-{next(self.counter)}"
        create_heartbeat(self.api.store, {"name": name, "schedule": "@daily"}, actor="test", now=datetime.now(UTC))
        return name

    def fresh_approval(self) -> int:
        """A run waiting at an approval step any person may decide."""
        from upkeep.engine import lifecycle
        from upkeep.people.approvals import request

        with self.api.store.write_connection() as c:
            run_id = lifecycle.create(
                c,
                lifecycle.Trigger.WAITING,
                task=None,
                task_type="procedure.execute",
                config={},
                due_at=datetime.now(UTC),
            )
        approval, _ = request(
            self.api.store,
            run_id=run_id,
            task_name=None,
            step=0,
            step_name="go-ahead",
            role="viewer",
            timeout_seconds=3600,
            message="",
            progress={},
        )
        return approval["id"]

    def call(self, method: str, path: str, role: str | None):
        url, kwargs = self.prepare(method, path)
        return self.send(method, url, kwargs, role)

    def send(self, method: str, url: str, kwargs: dict, role: str | None):
        return self.api.client.request(method, url, headers=self.api.headers(role), **kwargs)

    def prepare(self, method: str, path: str) -> tuple[str, dict]:
        body = None
        ref = "sleeper"
        heartbeat = path.startswith("/api/v1/heartbeats/")
        if path.startswith("/api/v1/keys/"):
            ref = create_key(self.api.store, name=f"k-{next(self.counter)}", role="viewer")[0]["name"]
        elif method == "DELETE" and heartbeat:
            ref = self.fresh_heartbeat()
        elif path.startswith("/api/v1/users/"):
            ref = create_user(self.api.store, name=f"u-{next(self.counter)}", role="viewer", password=None, actor="t")
            ref = ref["name"]
            if path.endswith("/enable"):  # make the call a real change
                set_enabled(self.api.store, ref, False, actor="test")
        elif method == "DELETE":
            ref = self.fresh_task()
        if method == "POST" and path == "/api/v1/scheduled-tasks":
            body = {"name": f"new-{next(self.counter)}", "type": "debug.noop"}
        elif method == "POST" and path == "/api/v1/heartbeats":
            body = {"name": f"new-{next(self.counter)}", "schedule": "@daily"}
        elif heartbeat and path.endswith(("/pause", "/resume")):  # make the call a real change
            set_paused(self.api.store, "sleeper", path.endswith("/resume"), actor="test", now=datetime.now(UTC))
        elif method == "POST" and path == "/api/v1/silences":
            body = {"match": {"task": "sleeper"}, "windows": ["Sun 02:00-05:00 Europe/Zagreb"], "reason": "matrix"}
        elif method == "POST" and path == "/api/v1/keys":
            body = {"name": f"key-{next(self.counter)}", "role": "viewer"}
        elif method == "POST" and path == "/api/v1/users":
            body = {"name": f"user-{next(self.counter)}", "role": "viewer", "password": "long enough"}
        elif path.endswith("/reset"):
            body = {"password": "another long one"}
        elif method == "PATCH":
            body = {"description": f"edited {next(self.counter)}"}
        elif path.endswith("/run"):
            body = {"dry_run": True}
        elif path.endswith(("/enable", "/disable")):  # make the call a real change
            self.api.upkeep.set_enabled("sleeper", path.endswith("/disable"), actor="test")
        alert_id, link = self.fresh_alert() if "{alert_id}" in path or "{link}" in path else (0, "")
        silence_id = self.fresh_silence() if "{silence_id}" in path else 0
        approval_id = self.fresh_approval() if "{approval_id}" in path else 0
        url = (
            path.replace("{ref}", ref)
            .replace("{alert_id}", str(alert_id))
            .replace("{link}", link)
            .replace("{silence_id}", str(silence_id))
            .replace("{approval_id}", str(approval_id))
            .replace("{run_id}", str(self.seeded["run_id"]))
            .replace("{source}", "app")
            .replace("{channel}", "ops")
            .replace("{name}", "debug.sleep")
            .replace("{token}", "no-such-token")
            .replace("{exit_status}", "3")
            .replace("{checklist_id}", str(self.seeded["checklist_id"]))
            .replace("{position}", "1")
        )
        kwargs = {"json": body} if body is not None else {}
        if path in ("/login", "/logout") and method == "POST":
            kwargs = {"data": {"token": "", "csrf_token": ""}}
        return url, kwargs


def audit_count(api) -> tuple[int, str | None]:
    items, total = api.upkeep.list_audit(limit=1)
    return total, items[0]["actor"] if items else None


def test_every_route_answers_401_403_or_2xx_as_specified_and_audits_every_change(api):
    seeded = seed(api)
    caller = Caller(api, seeded)
    routes = app_routes(api.app)
    missing = [r for r in routes if r not in REQUIRED]
    assert not missing, f"routes without a declared role: {missing}"
    checked = 0
    for (method, path), identity in itertools.product(routes, (None, "viewer", "operator", "admin")):
        need = REQUIRED[(method, path)]
        url, kwargs = caller.prepare(method, path)
        before = audit_count(api)
        response = caller.send(method, url, kwargs, identity)
        status = response.status_code
        where = f"{method} {path} as {identity or 'nobody'}: {status} {response.text[:200]}"
        if need == OPEN:
            assert status < 400, where
        elif isinstance(need, tuple) and need[0] == PERSON:  # keys are machines: refused whatever their role
            assert status == (401 if identity is None else 403), where
        elif isinstance(need, tuple):  # an HTML page
            role = need[1]
            if identity is None:
                assert status == 303 and response.headers["location"].startswith("/login"), where
            elif RANK[identity] < RANK[role]:
                assert status == 403, where
            else:
                assert status == 200 and "text/html" in response.headers["content-type"], where
        else:
            if identity is None:
                assert status == 401 and response.headers["www-authenticate"] == "Bearer", where
            elif RANK[identity] < RANK[need]:
                assert status == 403, where
                assert response.headers["content-type"].startswith("application/problem+json"), where
            else:
                assert 200 <= status < 300, where
        after = audit_count(api)
        if method in ("POST", "PATCH", "DELETE") and path.startswith("/api/"):
            if identity is not None and isinstance(need, str) and need != OPEN and RANK[identity] >= RANK[need]:
                assert after[0] > before[0] and after[1] == f"key:{identity}-key", f"no audit entry: {where}"
            else:
                assert after[0] == before[0], f"a refused call changed something: {where}"
        checked += 1
    assert checked >= 4 * 30


def test_invalid_and_revoked_keys_are_401(api):
    seed(api)
    assert api.client.get("/api/v1/me", headers={"Authorization": "Bearer upk_0000_nope"}).status_code == 401
    assert api.client.get("/api/v1/me", headers={"Authorization": "Basic abc"}).status_code == 401
    view, token = create_key(api.store, name="short-lived", role="admin")
    assert api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    api.delete("/api/v1/keys/short-lived")
    assert api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


@pytest.mark.parametrize("role", ["viewer", "admin"])
def test_configured_secrets_never_appear_in_any_response_or_page(api, role):
    seeded = seed(api)
    caller = Caller(api, seeded)
    pages = [
        "/",
        "/tasks",
        "/tasks/sleeper",
        f"/runs/{seeded['run_id']}",
        "/runs",
        "/audit",
        "/handlers",
        "/keys",
        "/audit?object_type=task",
        "/runs?task=sleeper",
        "/alerts",
    ]
    bodies = []
    for method, path in app_routes(api.app):
        if method == "GET":
            bodies.append((path, caller.call("GET", path, role).text))
    for page in pages:
        for fragment in ({}, {"X-Fragment": "1"}):
            bodies.append((page, api.client.get(page, headers={**api.headers(role), **fragment}).text))
    assert len(bodies) > 30
    for where, text in bodies:
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked by {where}"
    task = api.get("/api/v1/scheduled-tasks/sleeper").json()
    assert task["ping_url"] == "https://hc.example/***"


class PersonCaller(Caller):
    """Calls as a person signed in to the UI (session cookie and CSRF header), with the bodies the
    person-only routes need."""

    def __init__(self, api, seeded, user: dict, password: str):
        super().__init__(api, seeded)
        self.user, self.password = user, password
        self.csrf = ""

    def sign_in(self) -> None:
        assert "error" not in sign_in(self.api.client, self.user["name"], self.password).headers["location"]
        self.csrf = page_csrf(self.api.client)

    def send(self, method: str, url: str, kwargs: dict, role: str | None):
        return self.api.client.request(method, url, headers={"X-CSRF-Token": self.csrf}, **kwargs)

    def prepare(self, method: str, path: str) -> tuple[str, dict]:
        from upkeep.people import accounts, totp

        url, kwargs = super().prepare(method, path)
        now = datetime.now(UTC)
        if path == "/api/v1/me":
            kwargs = {"json": {"timezone": f"Europe/{['Zagreb', 'Vienna'][next(self.counter) % 2]}"}}
        elif path == "/api/v1/me/password":
            new = f"new password {next(self.counter)}"
            kwargs, self.password = {"json": {"current": self.password, "new": new}}, new
        elif path == "/api/v1/me/totp/confirm":
            secret = accounts.start_totp(self.api.store, self.user["id"], actor="test")["secret"]
            kwargs = {"json": {"code": totp.code_at(secret, now)}}
            self.secret = secret
        elif path == "/api/v1/me/totp/remove":
            kwargs = {"json": {"code": totp.code_at(self.secret, now + timedelta(seconds=30))}}
        elif "/items/" in path:
            fresh = open_checklist(self.api.store, title="fresh", items=[NewItem("one")])["id"]
            url = path.replace("{checklist_id}", str(fresh)).replace("{position}", "1")
            kwargs = {"json": {"reason": "not needed"}} if path.endswith("/skip") else {}
        return url, kwargs


def test_every_write_by_a_person_is_audited_under_their_name(api):
    """An admin person calls every writing route (those a key may call and the person-only ones):
    each answers 2xx and its newest audit entry names ``user:NAME``."""
    seeded = seed(api)
    password = "boss password 1"
    boss = create_user(api.store, name="boss", role="admin", password=password, actor="test")
    caller = PersonCaller(api, seeded, boss, password)
    caller.sign_in()
    writes = [
        (method, path)
        for method, path in app_routes(api.app)
        if method in ("POST", "PATCH", "DELETE") and path.startswith("/api/") and REQUIRED[(method, path)] != OPEN
    ]
    assert len(writes) >= 20
    for method, path in writes:
        url, kwargs = caller.prepare(method, path)
        before = audit_count(api)
        response = caller.send(method, url, kwargs, None)
        where = f"{method} {path}: {response.status_code} {response.text[:200]}"
        assert 200 <= response.status_code < 300, where
        after = audit_count(api)
        assert after[0] > before[0] and after[1] == "user:boss", f"not audited under the person's name: {where}"

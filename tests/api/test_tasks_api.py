"""The task and run endpoints over a real store: CRUD, filters, runs, problem+json errors."""

from __future__ import annotations

import pytest

PROBLEM = "application/problem+json"


def create(api, name="sleeper", **extra):
    body = {"name": name, "type": "debug.sleep", "schedule": "*/5 * * * *", "config": {"seconds": 1}, **extra}
    response = api.post("/api/v1/scheduled-tasks", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def assert_problem(response, status, field=None):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    if field is not None:
        assert body["field"] == field, body
    return body


def test_created_task_is_readable_by_id_and_by_name_with_next_five_times(api):
    task = create(api, description="sleeps")
    by_id = api.get(f"/api/v1/scheduled-tasks/{task['id']}", role="viewer").json()
    by_name = api.get("/api/v1/scheduled-tasks/sleeper", role="viewer").json()
    assert by_id == by_name
    assert by_id["schedule_text"] and len(by_id["next_times"]) == 5
    assert by_id["managed_by"] == "api" and by_id["description"] == "sleeps"


def test_list_filters_and_paginates_with_a_total(api):
    for i in range(7):
        create(api, name=f"t{i}", enabled=i % 2 == 0, tiers=["daily"] if i < 3 else [])
    page = api.get("/api/v1/scheduled-tasks?limit=3&offset=3", role="viewer").json()
    assert page["total"] == 7 and [t["name"] for t in page["items"]] == ["t3", "t4", "t5"]
    enabled = api.get("/api/v1/scheduled-tasks?enabled=true", role="viewer").json()
    assert {t["name"] for t in enabled["items"]} == {"t0", "t2", "t4", "t6"}
    daily = api.get("/api/v1/scheduled-tasks?tier=daily", role="viewer").json()
    assert daily["total"] == 3
    typed = api.get("/api/v1/scheduled-tasks?type=debug.noop", role="viewer").json()
    assert typed["total"] == 0


def test_patch_merges_config_and_null_restores_the_default(api):
    create(api, config={"seconds": 2, "outcome": "warning"})
    patched = api.patch("/api/v1/scheduled-tasks/sleeper", json={"config": {"seconds": 3}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["config"] == {"seconds": 3, "outcome": "warning"}
    reset = api.patch("/api/v1/scheduled-tasks/sleeper", json={"config": {"outcome": None}}).json()
    assert reset["config"] == {"seconds": 3}


def test_patch_changes_schedule_and_policies(api):
    create(api)
    body = {"schedule": "@every 10m", "max_retries": 2, "timeout_seconds": 30, "concurrency": "allow"}
    task = api.patch("/api/v1/scheduled-tasks/sleeper", json=body).json()
    assert task["schedule"] == "@every 10m" and task["max_retries"] == 2
    assert task["timeout_seconds"] == 30 and task["concurrency"] == "allow"


def test_enable_disable_and_delete(api):
    create(api)
    assert api.post("/api/v1/scheduled-tasks/sleeper/disable", role="operator").json()["enabled"] is False
    assert api.get("/api/v1/scheduled-tasks/sleeper").json()["next_run_at"] is None
    assert api.post("/api/v1/scheduled-tasks/sleeper/enable", role="operator").json()["enabled"] is True
    assert api.delete("/api/v1/scheduled-tasks/sleeper").status_code == 204
    assert_problem(api.get("/api/v1/scheduled-tasks/sleeper"), 404, "task")


def test_run_now_answers_202_with_a_pending_run_using_the_overrides(api):
    create(api)
    response = api.post(
        "/api/v1/scheduled-tasks/sleeper/run", role="operator", json={"overrides": {"seconds": 0.2}, "dry_run": True}
    )
    assert response.status_code == 202, response.text
    run = response.json()
    assert run["status"] == "pending" and run["dry_run"] is True and run["config"]["seconds"] == 0.2
    assert run["triggered_by"] == "key:operator-key"
    runs = api.get("/api/v1/scheduled-tasks/sleeper/runs", role="viewer").json()
    assert [r["id"] for r in runs["items"]] == [run["id"]]
    assert api.get(f"/api/v1/runs/{run['id']}", role="viewer").json()["id"] == run["id"]
    cancelled = api.post(f"/api/v1/runs/{run['id']}/cancel", role="operator").json()
    assert cancelled["status"] == "cancelled"
    events = api.get(f"/api/v1/runs/{run['id']}/events?after=0", role="viewer")
    assert events.status_code == 200 and isinstance(events.json(), list)


def test_run_overrides_only_overridable_fields(api):
    create(api)
    body = assert_problem(
        api.post("/api/v1/scheduled-tasks/sleeper/run", role="operator", json={"overrides": {"busy": True}}),
        422,
        "overrides.busy",
    )
    assert "seconds" in body["hint"]
    assert_problem(
        api.post("/api/v1/scheduled-tasks/sleeper/run", role="operator", json={"overrides": {"seconds": -1}}),
        422,
        "overrides.seconds",
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("get", "/api/v1/scheduled-tasks/no-such-task", None, 404, "task"),
        ("get", "/api/v1/scheduled-tasks/424242", None, 404, "task"),
        ("get", "/api/v1/scheduled-tasks/99999999999999999999999", None, 404, "task"),
        ("post", "/api/v1/scheduled-tasks/no-such-task/run", {}, 404, "task"),
        ("patch", "/api/v1/scheduled-tasks/sleeper", {"schedule": "61 * * * *"}, 422, "schedule"),
        ("patch", "/api/v1/scheduled-tasks/sleeper", {"timezone": "Mars/Olympus"}, 422, "timezone"),
        ("patch", "/api/v1/scheduled-tasks/sleeper", {"config": {"seconds": "soon"}}, 422, "config.seconds"),
        ("patch", "/api/v1/scheduled-tasks/sleeper", {"config": {"bogus": 1}}, 422, "config.bogus"),
        ("patch", "/api/v1/scheduled-tasks/sleeper", {"windows": ["Someday 25:00-26:00"]}, 422, "windows"),
        ("patch", "/api/v1/scheduled-tasks/sleeper", {"enabled": None}, 422, "enabled"),
        ("patch", "/api/v1/scheduled-tasks/sleeper", {"nonsense": 1}, 422, "nonsense"),
        ("post", "/api/v1/scheduled-tasks", {"name": "x", "type": "no.such"}, 422, "type"),
        ("post", "/api/v1/scheduled-tasks", {"name": "bad name", "type": "debug.noop"}, 422, "name"),
        ("post", "/api/v1/scheduled-tasks", {"name": "x", "type": "debug.noop", "schedule": "* * *"}, 422, "schedule"),
        ("post", "/api/v1/scheduled-tasks", {"name": "sleeper", "type": "debug.noop"}, 409, "name"),
        ("get", "/api/v1/runs/987654", None, 404, "run"),
        ("get", "/api/v1/runs/987654/events", None, 404, "run"),
        ("post", "/api/v1/runs/987654/cancel", None, 404, "run"),
        ("get", "/api/v1/runs/not-a-number", None, 422, "run_id"),
        ("get", "/api/v1/runs?status=bogus", None, 422, "status"),
        ("get", "/api/v1/stats?days=0", None, 422, "days"),
        ("get", "/api/v1/scheduled-tasks?limit=100000", None, 422, "limit"),
        ("get", "/api/v1/handlers/no.such", None, 404, "name"),
        ("get", "/api/v1/no-such-endpoint", None, 404, None),
    ],
)
def test_bad_input_answers_problem_json_naming_the_field(api, method, path, body, status, field):
    create(api)
    kwargs = {"json": body} if body is not None else {}
    assert_problem(getattr(api, method)(path, **kwargs), status, field)


def test_malformed_json_body_is_a_422_problem(api):
    response = api.client.post(
        "/api/v1/scheduled-tasks",
        content=b"{not json",
        headers={**api.headers("admin"), "Content-Type": "application/json"},
    )
    assert_problem(response, 422)


def test_command_tasks_cannot_be_created_or_changed_through_the_api(api):
    body = {"name": "sh", "type": "shell.run", "config": {"command": ["true"]}}
    problem = assert_problem(api.post("/api/v1/scheduled-tasks", json=body), 403, "config.command")
    assert "upkeep.yaml" in problem["detail"]
    procedure = {
        "name": "proc",
        "type": "procedure.execute",
        "config": {"steps": [{"type": "shell.run", "config": {"command": ["true"]}}]},
    }
    assert_problem(api.post("/api/v1/scheduled-tasks", json=procedure), 403, "config.steps[0].config.command")
    assert api.get("/api/v1/scheduled-tasks/sh").status_code == 404
    assert api.get("/api/v1/scheduled-tasks/proc").status_code == 404


def test_every_change_writes_an_audit_entry_naming_the_key(api):
    create(api)
    api.patch("/api/v1/scheduled-tasks/sleeper", json={"config": {"seconds": 2}})
    api.post("/api/v1/scheduled-tasks/sleeper/disable", role="operator")
    run = api.post("/api/v1/scheduled-tasks/sleeper/run", role="operator", json={}).json()
    api.post(f"/api/v1/runs/{run['id']}/cancel", role="operator")
    api.delete("/api/v1/scheduled-tasks/sleeper")
    entries = api.get("/api/v1/audit?limit=50", role="viewer").json()["items"]
    seen = [(e["actor"], e["action"]) for e in reversed(entries)]
    assert seen == [
        ("key:admin-key", "create"),
        ("key:admin-key", "update"),
        ("key:operator-key", "disable"),
        ("key:operator-key", "trigger"),
        ("key:operator-key", "cancel"),
        ("key:admin-key", "delete"),
    ]


def test_stats_and_handlers(api):
    create(api)
    stats = api.get("/api/v1/stats?days=7", role="viewer").json()
    assert stats["tasks"] == 1 and stats["enabled"] == 1 and stats["days"] == 7
    handlers = {h["name"]: h for h in api.get("/api/v1/handlers", role="viewer").json()}
    sleep = handlers["debug.sleep"]
    assert sleep["config_schema"]["properties"]["seconds"]["x-overridable"] is True
    assert set(sleep["overridable"]) == {"seconds", "outcome"}


def test_keys_are_created_listed_and_revoked_by_admins_and_the_token_is_shown_once(api):
    created = api.post("/api/v1/keys", json={"name": "ci", "role": "operator"})
    assert created.status_code == 201
    token = created.json()["token"]
    listed = api.get("/api/v1/keys").json()
    assert "ci" in {k["name"] for k in listed} and token not in api.get("/api/v1/keys").text
    assert api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()["role"] == "operator"
    assert api.delete("/api/v1/keys/ci").json()["revoked_at"]
    assert api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert_problem(api.delete("/api/v1/keys/admin-key"), 409, "ref")
    actions = [(e["action"], e["object_id"]) for e in api.get("/api/v1/audit?object_type=key").json()["items"]]
    assert ("create", "ci") in actions and ("revoke", "ci") in actions


def test_health_probes_need_no_key(api):
    assert api.client.get("/healthz").json() == {"status": "ok"}  # liveness: no schema verdict to contradict /readyz
    ready = api.client.get("/readyz").json()
    assert ready["status"] == "ok" and ready["schema_up_to_date"] is True


def test_a_restore_without_confirm_is_refused_before_any_run_exists(api):
    from upkeep.store.models import AuditEntry, Run

    task = {"name": "restore-app", "type": "backup.restore", "config": {"backup": "latest"}}
    api.upkeep.create_task(task, actor="test")
    body = assert_problem(api.post("/api/v1/scheduled-tasks/restore-app/run", role="operator", json={}), 422, "confirm")
    assert "needs confirmation" in body["detail"] and "dry" in body["hint"]
    with api.store.read() as s:
        assert s.query(Run).count() == 0
        assert [a.action for a in s.query(AuditEntry)] == ["create"]


def test_the_favicon_is_served(api):
    icon = api.client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO header
    svg = api.client.get("/static/favicon.svg")
    assert svg.status_code == 200 and svg.text.startswith("<svg")


def test_api_docs_are_served_without_a_cdn(tmp_path):
    from fastapi.testclient import TestClient

    from upkeep.api.app import create_app
    from upkeep.settings import Settings
    from upkeep.store.db import Store

    settings = Settings(config=tmp_path / "upkeep.yaml")
    store = Store(settings.resolved_database_url)
    store.upgrade()
    client = TestClient(create_app(settings, store=store))
    page = client.get("/docs")
    assert page.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text.split("<body>")[0]
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "upkeep"

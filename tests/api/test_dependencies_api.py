"""``after:`` through the API: 4xx naming the field for a cycle, an unknown task or a bad bound;
the task shows its upstream and downstream tasks; a dependent run says which run started it."""

from __future__ import annotations

from test_tasks_api import assert_problem

from upkeep.engine import lifecycle

WORKER = lifecycle.WorkerIdentity(host="test", pid=1, pgid=1)


def create(api, name, **extra):
    response = api.post("/api/v1/scheduled-tasks", json={"name": name, "type": "debug.noop", **extra})
    assert response.status_code == 201, response.text
    return response.json()


def test_cycles_unknown_tasks_and_bounds_are_4xx_naming_the_field(api):
    create(api, "a")
    created = create(api, "b", after={"tasks": ["a"], "on": "failure"})
    assert created["after"] == {"tasks": ["a"], "on": "failure", "within": "24h"} and created["upstream"] == ["a"]
    cycle = api.patch("/api/v1/scheduled-tasks/a", json={"after": {"tasks": ["b"]}})
    assert "a → b → a" in assert_problem(cycle, 422, "after.tasks")["detail"] or "b → a → b" in cycle.text
    unknown = api.post("/api/v1/scheduled-tasks", json={"name": "c", "type": "debug.noop", "after": {"tasks": ["x"]}})
    assert "'x', which is no task" in assert_problem(unknown, 422, "after.tasks")["detail"]
    bad = api.post(
        "/api/v1/scheduled-tasks", json={"name": "c", "type": "debug.noop", "after": {"tasks": ["a"], "within": "1y"}}
    )
    assert bad.status_code == 422
    assert_problem(api.delete("/api/v1/scheduled-tasks/a"), 409)
    assert api.get("/api/v1/scheduled-tasks/a", role="viewer").json()["downstream"] == ["b"]
    removed = api.patch("/api/v1/scheduled-tasks/b", json={"after": None})
    assert removed.status_code == 200 and removed.json()["after"] is None
    assert api.get("/api/v1/scheduled-tasks/a", role="viewer").json()["downstream"] == []
    assert api.delete("/api/v1/scheduled-tasks/a").status_code == 204


def test_a_dependent_run_names_the_run_that_started_it(api):
    create(api, "a")
    create(api, "b", after={"tasks": ["a"]})
    run_id = api.post("/api/v1/scheduled-tasks/a/run", role="operator", json={}).json()["id"]
    assert lifecycle.claim(api.store, run_id, WORKER) is not None
    assert lifecycle.finish(api.store, run_id, "completed", outcome="ok")
    (run,) = api.get("/api/v1/runs?task=b", role="viewer").json()["items"]
    assert run["origin"] == "dependency" and run["trigger_run_id"] == run_id
    assert run["upstream_runs"][0]["run_id"] == run_id and run["triggered_by"] == f"after run {run_id} of a"

"""Where alerting shows and is driven: ``upkeep apply`` refusing bad silences, dependencies and
affects (exit 2, file, line and field, nothing written); silences through the API; the dashboard
and the report showing a target's annotation."""

from __future__ import annotations

import pytest
from notify_receivers import HttpReceiver
from typer.testing import CliRunner

from upkeep.auth import create_key

GOOD = """\
targets:
  services:
    api: {type: http, url: "http://127.0.0.1:9/health", depends_on: [services.db]}
    db: {type: tcp, host: 127.0.0.1, port: 9}
tasks:
  - name: nightly-backup
    type: debug.sleep
    affects: {services: [api]}
silences:
  - match: {task: nightly-backup}
    windows: ["Sun 02:00-05:00 Europe/Zagreb"]
"""
BAD = [
    (
        ("Europe/Zagreb", "Europe/Zagrebb"),
        "upkeep.yaml line 11: silences.0.windows.0: invalid maintenance window 'Sun 02:00-05:00 Europe/Zagrebb': "
        "unknown time zone 'Europe/Zagrebb'",
    ),
    (
        ("Sun 02:00-05:00", "Sun 02:00-29:00"),
        "upkeep.yaml line 11: silences.0.windows.0: invalid maintenance window 'Sun 02:00-29:00 Europe/Zagreb': "
        "end time '29:00' must be between 00:00 and 24:00",
    ),
    (("match: {task:", "match: {taks:"), "upkeep.yaml line 10: silences.0.match.taks: unknown key"),
    (
        ("match: {task: nightly-backup}", "match: {task: nightly}"),
        "upkeep.yaml line 10: silences.0.match.task: 'nightly' is not a task of this instance",
    ),
    (
        ("depends_on: [services.db]", "depends_on: [databases.db]"),
        "upkeep.yaml line 3: targets.services.api.depends_on.0: databases.db is not a target",
    ),
    (
        ("port: 9}", "port: 9, depends_on: [services.api]}"),
        "upkeep.yaml line 3: targets.services.api.depends_on: a cycle: services.api → services.db → services.api",
    ),
    (
        ("affects: {services: [api]}", "affects: {services: [web]}"),
        "upkeep.yaml line 8: task 'nightly-backup': affects.services.0: 'web' is not under targets.services",
    ),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m.split(": ")[1] for _, m in BAD])
def test_apply_refuses_bad_silences_dependencies_and_affects_with_exit_2_naming_file_line_and_field(
    tmp_path, change, message
):
    from upkeep.cli.main import app

    config = tmp_path / "upkeep.yaml"
    config.write_text(GOOD.replace(*change))
    runner = CliRunner()
    result = runner.invoke(app, ["--config", str(config), "apply"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {message}"), result.output
    assert "Traceback" not in result.output
    listed = runner.invoke(app, ["--config", str(config), "tasks", "list", "--json"])
    assert listed.exit_code == 0 and '"nightly-backup"' not in listed.output  # nothing written
    if "is not a task" not in message:  # doctor and serve check the file before the store opens
        doctor = runner.invoke(app, ["--config", str(config), "doctor"])
        assert doctor.exit_code == 2 and message in doctor.output, doctor.output
    config.write_text(GOOD)
    assert runner.invoke(app, ["--config", str(config), "apply"]).exit_code == 0


def test_silences_through_the_api(world):
    world.apply(GOOD)
    client = world.app()
    operator = {"Authorization": f"Bearer {create_key(world.store, name='ops', role='operator')[1]}"}
    made = client.post(
        "/api/v1/silences",
        json={"match": {"target": "services.api"}, "windows": ["Sat,Sun 01:00-03:00 Europe/Zagreb"], "reason": "x"},
        headers=operator,
    )
    assert made.status_code == 201, made.text
    assert made.json()["match"] == {"target": "services.api"} and made.json()["created_by"] == "key:ops"
    bad_zone = client.post(
        "/api/v1/silences",
        json={"match": {"task": "nightly-backup"}, "windows": ["Sun 02:00-05:00 Mars/Olympus"]},
        headers=operator,
    )
    assert bad_zone.status_code == 422 and bad_zone.json()["field"] == "windows.0", bad_zone.text
    unknown = client.post(
        "/api/v1/silences", json={"match": {"task": "ghost"}, "until": "2999-01-01T00:00:00Z"}, headers=operator
    )
    assert unknown.status_code == 404 and unknown.json()["field"] == "match.task"
    naive = client.post(
        "/api/v1/silences", json={"match": {"tier": "daily"}, "until": "2999-01-01T00:00:00"}, headers=operator
    )
    assert naive.status_code == 422 and naive.json()["field"] == "until"
    listed = client.get("/api/v1/silences", headers=operator).json()["items"]
    assert sorted(s["managed_by"] for s in listed) == ["api", "file"]
    file_made = next(s for s in listed if s["managed_by"] == "file")
    refused = client.post(f"/api/v1/silences/{file_made['id']}/expire", headers=operator)
    assert refused.status_code == 409 and "apply --prune" in refused.json()["hint"]
    ended = client.post(f"/api/v1/silences/{made.json()['id']}/expire", headers=operator)
    assert ended.status_code == 200 and ended.json()["ended"] is True
    assert len(client.get("/api/v1/silences", headers=operator).json()["items"]) == 1
    page = client.get("/alerts", headers=operator)
    assert page.status_code == 200 and 'id="silence-form"' in page.text and "upkeep.yaml" in page.text
    viewer = {"Authorization": f"Bearer {create_key(world.store, name='v', role='viewer')[1]}"}
    assert 'id="silence-form"' not in client.get("/alerts", headers=viewer).text
    client.close()


def test_the_dashboard_and_the_report_show_a_targets_maintenance(world):
    from upkeep.app.run_services import RunServices
    from upkeep.reports import build_digest, render_html, render_markdown

    api = HttpReceiver().start()
    try:
        world.apply(
            f"""\
            targets:
              services:
                api: {{type: http, url: "http://127.0.0.1:{api.port}/health", timeout: 5}}
            tasks:
              - {{name: deploy, type: debug.sleep, config: {{seconds: 0}}, affects: {{services: [api]}}}}
              - {{name: health, type: health.check, notify: {{channels: [hook]}}}}
            """
        )
        world.evaluate()
        deploy = world.trigger("deploy")
        claimed = world.claim(deploy)
        api.status = 502
        world.run("health")
        world.evaluate()
        note = f"during maintenance: run {deploy} of task deploy"
        client = world.app()
        viewer = {"Authorization": f"Bearer {create_key(world.store, name='v', role='viewer')[1]}"}
        dashboard = client.get("/", headers=viewer)
        assert note in dashboard.text and f"in maintenance: run {deploy} of task deploy" in dashboard.text
        assert note in client.get("/", headers={**viewer, "X-Fragment": "1"}).text
        digest = build_digest(RunServices(world.store, world.settings), "day")
        [target] = digest["health"]["targets"]
        assert target["name"] == "api" and target["note"].startswith(note)
        assert f"| {note}; in maintenance: run {deploy} of task deploy |" in render_markdown(digest)
        assert note in render_html(digest)
        world.execute(claimed)
        client.close()
    finally:
        api.stop()


def test_a_task_made_through_the_api_affects_only_targets_that_exist(world):
    world.apply(GOOD)
    client = world.app()
    admin = {"Authorization": f"Bearer {create_key(world.store, name='a', role='admin')[1]}"}
    task = {"name": "deploy", "type": "debug.noop", "affects": {"services": ["api", "web"]}}
    refused = client.post("/api/v1/scheduled-tasks", json=task, headers=admin)
    assert refused.status_code == 422 and refused.json()["field"] == "affects.services.1", refused.text
    made = client.post("/api/v1/scheduled-tasks", json={**task, "affects": {"services": ["api"]}}, headers=admin)
    assert made.status_code == 201 and made.json()["affects"] == {"services": ["api"], "databases": [], "settle": "10m"}
    edited = client.patch("/api/v1/scheduled-tasks/deploy", json={"affects": {"databases": ["main"]}}, headers=admin)
    assert edited.status_code == 422 and edited.json()["field"] == "affects.databases.0"
    client.close()

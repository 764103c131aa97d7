"""Host-scoped values: only upkeep.yaml and the local CLI may say what a task touches on the host.

One table drives every handler's config model: each reviewed host-scoped field (the list in
docs/handlers.md) is refused through POST, PATCH and a run override by an admin key with a 403/422
problem naming the field; inventory references and plain values are accepted for the same
handler; the same host-scoped values in upkeep.yaml apply.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from upkeep.app.config import apply_file
from upkeep.engine.registry import REGISTRY
from upkeep.store.records import CONFIG_DOMAIN, Records

DOCS = Path(__file__).parent.parent.parent / "docs" / "handlers.md"
PG = "postgresql://postgres@127.0.0.1:5432/app"

TARGETS = {
    "databases": {
        "main": {"url": "postgresql://app@127.0.0.1:5432/app"},
        "other": {"url": "postgresql://app@127.0.0.1:5432/other"},
        "lite": {"url": "sqlite:////srv/app/app.db"},
    },
    "files": {"etc": {"paths": ["/etc/app"]}, "restored": {"path": "/srv/restored"}},
    "backups": {"nightly": {"path": "/srv/backups"}},
    "services": {"api": {"type": "http", "url": "http://127.0.0.1:9/health"}, "rootfs": {"type": "disk", "path": "/"}},
    "logs": {"api": {"paths": ["/var/log/app/api.log"]}},
    "env_files": {"app": {"path": "/srv/app/.env"}},
}
CHANNELS = {"ops": {"url": "json://127.0.0.1:9/hook"}}

# The reviewed list: handler -> host-scoped field -> inventory kinds whose names stand in for it.
REVIEWED: dict[str, dict[str, list[str]]] = {
    "backup.create": {
        "pg_dump_path": [],
        "pg_bin_dir": [],
        "mysql_bin_dir": [],
        "encryption_key_env": [],
        "source": ["databases", "files"],
        "destination": ["backups"],
        "copy_to": [],
        "rdb_path": [],
    },
    "backup.drill": {
        "pg_dump_path": [],
        "pg_bin_dir": [],
        "mysql_bin_dir": [],
        "encryption_key_env": [],
        "checks": [],
        "assertions": [],
        "scratch_target": ["databases"],
        "scratch_dir": [],
        "redis_check_rdb_path": [],
    },
    "backup.prune": {"source": ["databases", "files"]},
    "backup.restore": {
        "pg_dump_path": [],
        "pg_bin_dir": [],
        "mysql_bin_dir": [],
        "encryption_key_env": [],
        "source": ["databases", "files"],
        "target": ["databases"],
        "target_database": [],
        "target_path": ["files", "databases"],
        "maintenance_database": [],
        "safety_destination": ["backups"],
        "stop_command": [],
        "start_command": [],
        "scratch_dir": [],
    },
    "backup.verify": {
        "pg_dump_path": [],
        "pg_bin_dir": [],
        "mysql_bin_dir": [],
        "encryption_key_env": [],
        "source": ["databases", "files"],
        "scratch_target": ["databases"],
        "assertions": [],
        "scratch_dir": [],
        "redis_check_rdb_path": [],
    },
    "capacity.plan": {},
    "checklist.run": {},  # texts, task names and durations: nothing on the host
    "capacity.sample": {"disk_paths": [], "size_paths": [], "databases": ["databases"], "logs": ["logs"]},
    "config.audit": {"paths": ["env_files"], "upkeep_config": []},
    "db.analyze": {"target": ["databases"], "databases": ["databases"]},
    "db.inspect": {"target": ["databases"], "databases": ["databases"]},
    "db.reindex": {"target": ["databases"], "databases": ["databases"]},
    "db.terminate_sessions": {"target": ["databases"], "databases": ["databases"]},
    "db.vacuum": {"target": ["databases"], "databases": ["databases"]},
    "debug.fail": {},
    "debug.noop": {},
    "debug.sleep": {},
    "deps.check": {"python": [], "npm_projects": [], "npm_command": []},
    "docker.cleanup": {"docker_host": [], "volumes": []},
    "health.check": {
        "checks[PostgresTarget].url": [],
        "checks[RedisTarget].url": [],
        "checks[ProcessTarget].pidfile": [],
        "checks[DockerTarget].docker_host": [],
        "checks[DiskTarget].path": [],
        "docker_host": [],
    },
    "health.report": {"logs": ["logs"]},
    "logs.analyze": {"paths": []},
    "logs.cleanup": {"directories": []},
    "logs.rotate": {
        "rules[].paths": [],
        "rules[].create_mode": [],
        "rules[].create_owner": [],
        "rules[].create_group": [],
        "rules[].postrotate": [],
        "rules[].pidfile": [],
        "rules[].signal": [],
    },
    "performance.review": {"logs": ["logs"], "databases": ["databases"]},
    "procedure.execute": {"steps[].config.*": []},
    "report.send": {},
    "retention.enforce": {"paths": []},
    "runs.cleanup_expired": {},
    "runs.cleanup_stale": {},
    "security.audit": {
        "python_projects": [],
        "npm_projects": [],
        "pip_audit_command": [],
        "npm_command": [],
        "key_tables[].target": ["databases"],
        "world_writable_paths": [],
    },
    "shell.run": {"command": [], "cwd": [], "env": [], "user": []},
    "system.resources": {"paths": ["services"]},
}


def rule(**extra: Any) -> dict[str, Any]:
    return {"rules": [{"paths": ["/var/log/app/*.log"], **extra}]}


# handler -> (a base config the API may send or None, a base made by the file for PATCH and runs,
#             host cases [(reviewed field, config, fields the refusal must name)],
#             accepted cases [config with inventory references or plain values])
CASES: dict[str, tuple[dict | None, dict, list[tuple[str, dict, list[str]]], list[dict]]] = {
    "backup.create": (
        {"source": "main"},
        {"source": "main"},
        [
            ("pg_dump_path", {"pg_dump_path": "/usr/bin/pg_dump"}, ["pg_dump_path"]),
            ("pg_bin_dir", {"pg_bin_dir": "/usr/lib/postgresql/15/bin"}, ["pg_bin_dir"]),
            ("mysql_bin_dir", {"mysql_bin_dir": "/opt/mariadb/bin"}, ["mysql_bin_dir"]),
            ("encryption_key_env", {"encrypt": True, "encryption_key_env": "PG_PASSWORD"}, ["encryption_key_env"]),
            ("source", {"source": {"type": "files", "paths": ["/srv/app/.upkeep"]}}, ["source"]),
            ("source", {"source": "/srv/app"}, ["source"]),
            ("destination", {"destination": "/tmp/elsewhere"}, ["destination"]),
            ("copy_to", {"copy_to": "/mnt/copy"}, ["copy_to"]),
            ("rdb_path", {"rdb_path": "/var/lib/redis/dump.rdb"}, ["rdb_path"]),
        ],
        [{"source": "etc"}, {"destination": "nightly"}, {"compression": "gzip", "tags": ["t"], "excludes": ["*.tmp"]}],
    ),
    "backup.drill": (
        {"sources": ["main"]},
        {"sources": ["main"]},
        [
            ("pg_dump_path", {"pg_dump_path": "/usr/bin/pg_dump"}, ["pg_dump_path"]),
            ("pg_bin_dir", {"pg_bin_dir": "/usr/lib/postgresql/15/bin"}, ["pg_bin_dir"]),
            ("mysql_bin_dir", {"mysql_bin_dir": "/opt/mariadb/bin"}, ["mysql_bin_dir"]),
            ("encryption_key_env", {"encryption_key_env": "PG_PASSWORD"}, ["encryption_key_env"]),
            ("checks", {"checks": [{"type": "process", "pidfile": "/run/x.pid"}]}, ["checks"]),
            ("assertions", {"assertions": ["SELECT true"]}, ["assertions"]),
            ("scratch_target", {"scratch_target": PG}, ["scratch_target"]),
            ("scratch_dir", {"scratch_dir": "/tmp/scratch"}, ["scratch_dir"]),
            ("redis_check_rdb_path", {"redis_check_rdb_path": "/usr/bin/redis-check-rdb"}, ["redis_check_rdb_path"]),
        ],
        [{"sources": ["main", "a-catalog-name"]}, {"scratch_target": "other"}, {"rto_objective": "10m"}],
    ),
    "backup.prune": (
        {"source": "main", "retention": {"keep_last": 3}},
        {"source": "main", "retention": {"keep_last": 3}},
        [("source", {"source": {"type": "sqlite", "path": "/srv/app/app.db"}}, ["source"])],
        [{"source": "etc"}, {"source": "a-catalog-name"}, {"retention": {"keep_last": 5}}],
    ),
    "backup.restore": (
        {"source": "main"},
        {"source": "main"},
        [
            ("pg_dump_path", {"pg_dump_path": "/usr/bin/pg_dump"}, ["pg_dump_path"]),
            ("pg_bin_dir", {"pg_bin_dir": "/usr/lib/postgresql/15/bin"}, ["pg_bin_dir"]),
            ("mysql_bin_dir", {"mysql_bin_dir": "/opt/mariadb/bin"}, ["mysql_bin_dir"]),
            ("encryption_key_env", {"encryption_key_env": "PG_PASSWORD"}, ["encryption_key_env"]),
            ("source", {"source": {"type": "postgres", "url": PG}}, ["source"]),
            ("target", {"target": PG}, ["target"]),
            ("target_database", {"target_database": "other"}, ["target_database"]),
            ("target_path", {"target_path": "/srv/elsewhere"}, ["target_path"]),
            ("maintenance_database", {"maintenance_database": "template1"}, ["maintenance_database"]),
            ("safety_destination", {"safety_destination": "/tmp/safety"}, ["safety_destination"]),
            ("stop_command", {"stop_command": ["systemctl", "stop", "app"]}, ["stop_command"]),
            ("start_command", {"start_command": ["systemctl", "start", "app"]}, ["start_command"]),
            ("scratch_dir", {"scratch_dir": "/tmp/scratch"}, ["scratch_dir"]),
        ],
        [
            {"target": "other"},
            {"target_path": "restored"},
            {"target_path": "lite"},
            {"safety_destination": "nightly"},
            {"target_database": "app_copy", "create": True},
            {"backup": "20260101T000000Z-abcdef", "allow_unverified": True, "restore_jobs": 4},
        ],
    ),
    "backup.verify": (
        {},
        {},
        [
            ("pg_dump_path", {"pg_dump_path": "/usr/bin/pg_dump"}, ["pg_dump_path"]),
            ("pg_bin_dir", {"pg_bin_dir": "/usr/lib/postgresql/15/bin"}, ["pg_bin_dir"]),
            ("mysql_bin_dir", {"mysql_bin_dir": "/opt/mariadb/bin"}, ["mysql_bin_dir"]),
            ("encryption_key_env", {"encryption_key_env": "PG_PASSWORD"}, ["encryption_key_env"]),
            ("source", {"source": {"type": "files", "paths": ["/etc"]}}, ["source"]),
            ("scratch_target", {"scratch_target": PG}, ["scratch_target"]),
            ("assertions", {"assertions": ["COPY (SELECT 1) TO PROGRAM 'id'"]}, ["assertions"]),
            ("scratch_dir", {"scratch_dir": "/tmp/scratch"}, ["scratch_dir"]),
            ("redis_check_rdb_path", {"redis_check_rdb_path": "/usr/bin/redis-check-rdb"}, ["redis_check_rdb_path"]),
        ],
        [{"source": "main"}, {"source": "a-catalog-name"}, {"scratch_target": "other"}, {"which": "all"}],
    ),
    "capacity.plan": ({}, {}, [], [{"lookback_days": 30}]),
    "checklist.run": (
        {"items": [{"text": "Logs reviewed"}]},
        {"items": [{"text": "Logs reviewed"}]},
        [],
        [{"items": [{"text": "Backup ok", "task": "nightly", "within": "26h"}], "due_within": "3d"}],
    ),
    "capacity.sample": (
        {},
        {},
        [
            ("disk_paths", {"disk_paths": ["/srv"]}, ["disk_paths"]),
            ("size_paths", {"size_paths": ["/var/lib"]}, ["size_paths"]),
            ("databases", {"databases": [PG]}, ["databases"]),
            ("logs", {"logs": ["/var/log/*.log"]}, ["logs"]),
        ],
        [{"databases": ["main", "upkeep"]}, {"logs": ["api"]}, {"top_tables": 5, "cpu": False}],
    ),
    "config.audit": (
        {"targets": ["app"]},
        {"targets": ["app"]},
        [
            ("paths", {"paths": ["/srv/other/.env"]}, ["paths"]),
            ("upkeep_config", {"upkeep_config": "/etc/upkeep/upkeep.yaml"}, ["upkeep_config"]),
        ],
        [{"paths": ["app"]}, {"min_secret_length": 16}],
    ),
    **{
        name: (
            {"target": "main"},
            {"target": "main"},
            [
                ("target", {"target": PG}, ["target"]),
                ("databases", {"databases": "all"}, ["databases"]),
                ("databases", {"databases": ["postgres"]}, ["databases"]),
            ],
            [{"target": "other"}, {"target": "upkeep"}, {"databases": ["other"]}, plain],
        )
        for name, plain in (
            ("db.analyze", {"tables": ["public.orders"]}),
            ("db.inspect", {"top_n": 5}),
            ("db.reindex", {"indexes": ["orders_pkey"]}),
            ("db.terminate_sessions", {"idle_minutes": 60}),
            ("db.vacuum", {"tables": ["public.orders"], "verbose": True}),
        )
    },
    "debug.fail": ({}, {}, [], [{"message": "no"}]),
    "debug.noop": ({}, {}, [], []),
    "debug.sleep": ({}, {}, [], [{"seconds": 0.5}]),
    "deps.check": (
        {},
        {},
        [
            ("python", {"python": ["/srv/venv/bin/python"]}, ["python"]),
            ("npm_projects", {"npm_projects": ["/srv/app"]}, ["npm_projects"]),
            ("npm_command", {"npm_command": ["/tmp/npm"]}, ["npm_command"]),
        ],
        [{"apt": "off", "warn_on": ["major"]}],
    ),
    "docker.cleanup": (
        {},
        {},
        [
            ("docker_host", {"docker_host": "unix:///var/run/other.sock"}, ["docker_host"]),
            ("volumes", {"volumes": ["pgdata"]}, ["volumes"]),
        ],
        [{"until": "48h", "images": False, "labels": ["tmp"]}],
    ),
    "health.check": (
        {"services": ["api"]},
        {"services": ["api"]},
        [
            ("checks[PostgresTarget].url", {"checks": [{"type": "postgres", "url": PG}]}, ["checks[0].url"]),
            (
                "checks[RedisTarget].url",
                {"checks": [{"type": "redis", "url": "redis://127.0.0.1:6379/0"}]},
                ["checks[0].url"],
            ),
            (
                "checks[ProcessTarget].pidfile",
                {"checks": [{"type": "process", "pidfile": "/srv/app/.upkeep/session.key"}]},
                ["checks[0].pidfile"],
            ),
            (
                "checks[DockerTarget].docker_host",
                {"checks": [{"type": "docker", "container": "web", "docker_host": "tcp://10.0.0.1:2375"}]},
                ["checks[0].docker_host"],
            ),
            ("checks[DiskTarget].path", {"checks": [{"type": "disk", "path": "/srv"}]}, ["checks[0].path"]),
            ("docker_host", {"docker_host": "unix:///var/run/other.sock"}, ["docker_host"]),
        ],
        [
            {"services": ["api", "rootfs"]},
            {"checks": [{"type": "http", "url": "http://127.0.0.1:9/x"}, {"type": "tcp", "port": 25}]},
            {"checks": [{"type": "process", "process_name": "nginx"}, {"type": "disk"}]},
            {"timeout": 5},
        ],
    ),
    "health.report": ({}, {}, [("logs", {"logs": ["/var/log/*.log"]}, ["logs"])], [{"logs": ["api"]}]),
    "logs.analyze": (
        {},
        {},
        [("paths", {"paths": ["/var/log/*.log"]}, ["paths"])],
        [{"targets": ["api"]}, {"window": "1h", "format": "json"}],
    ),
    "logs.cleanup": (
        {},
        {},
        [("directories", {"directories": ["/var/log/app"]}, ["directories"])],
        [{"targets": ["api"], "max_age_days": 3}],
    ),
    "logs.rotate": (
        {},
        {},
        [
            ("rules[].paths", rule(), ["rules[0].paths"]),
            ("rules[].pidfile", rule(pidfile="/run/victim.pid", signal="KILL"), ["rules[0].pidfile"]),
            ("rules[].signal", rule(signal="KILL"), ["rules[0].signal"]),
            ("rules[].create_mode", rule(create_mode="0666"), ["rules[0].create_mode"]),
            ("rules[].create_owner", rule(create_owner="nobody"), ["rules[0].create_owner"]),
            ("rules[].create_group", rule(create_group="nogroup"), ["rules[0].create_group"]),
            ("rules[].postrotate", rule(postrotate=["/bin/true"]), ["rules[0].postrotate"]),
        ],
        [{"targets": ["api"], "timezone": "UTC"}, {"force": True}],
    ),
    "performance.review": (
        {},
        {},
        [
            ("logs", {"logs": ["/var/log/*.log"]}, ["logs"]),
            ("databases", {"databases": [PG]}, ["databases"]),
        ],
        [{"logs": ["api"], "databases": ["main"]}, {"period": "7d"}],
    ),
    "procedure.execute": (
        {"steps": [{"type": "debug.noop"}]},
        {"steps": [{"type": "debug.noop"}]},
        [
            (
                "steps[].config.*",
                {"steps": [{"type": "shell.run", "config": {"command": ["id"]}}]},
                ["steps[0].config.command"],
            ),
            (
                "steps[].config.*",
                {"steps": [{"type": "logs.rotate", "config": rule(pidfile="/run/x.pid")}]},
                ["steps[0].config.rules[0].pidfile"],
            ),
        ],
        [{"steps": [{"type": "db.vacuum", "config": {"target": "main"}}]}, {"stop_on_failure": False}],
    ),
    "report.send": ({"channels": ["ops"]}, {"channels": ["ops"]}, [], [{"period": "day"}]),
    "retention.enforce": (
        None,
        {"paths": ["/var/backups/*.tar"], "keep_last": 3},
        [("paths", {"paths": ["/etc/*"]}, ["paths"])],
        [{"keep_last": 5}],
    ),
    "runs.cleanup_expired": ({}, {}, [], [{"retention_days": 7}]),
    "runs.cleanup_stale": ({}, {}, [], []),
    "security.audit": (
        {},
        {},
        [
            ("python_projects", {"python_projects": ["/srv/app"]}, ["python_projects"]),
            ("npm_projects", {"npm_projects": ["/srv/web"]}, ["npm_projects"]),
            ("pip_audit_command", {"pip_audit_command": ["/tmp/pip-audit"]}, ["pip_audit_command"]),
            ("npm_command", {"npm_command": ["/tmp/npm"]}, ["npm_command"]),
            ("key_tables[].target", {"key_tables": [{"target": PG, "table": "keys"}]}, ["key_tables[0].target"]),
            ("world_writable_paths", {"world_writable_paths": ["/srv"]}, ["world_writable_paths"]),
        ],
        [{"key_tables": [{"target": "main", "table": "api_keys"}]}, {"tls_hosts": ["example.org:443"]}],
    ),
    "shell.run": (
        None,
        {"command": ["true"]},
        [
            ("command", {"command": ["rm", "-rf", "/srv"]}, ["command"]),
            ("cwd", {"cwd": "/"}, ["cwd"]),
            ("env", {"env": {"A": "b"}}, ["env"]),
            ("user", {"user": "root"}, ["user"]),
        ],
        [{"tail_lines": 10}],
    ),
    "system.resources": (
        {},
        {},
        [("paths", {"paths": ["/srv"]}, ["paths"])],
        [{"paths": ["rootfs"]}, {"top": 3, "cpu_sample_seconds": 0.2}],
    ),
}


def test_the_reviewed_list_is_what_the_models_declare_and_the_docs_list():
    assert sorted(REVIEWED) == REGISTRY.names() == sorted(CASES)
    docs = DOCS.read_text()
    for name in REGISTRY.names():
        declared = {field: mark["refs"] for field, mark in REGISTRY.get(name).host_scoped_fields()}
        assert declared == REVIEWED[name], name
        section = docs.split(f"## `{name}`", 1)[1].split("\n## ", 1)[0]
        listed = re.findall(r"^- `([^`]+)`: ", section, re.M)
        assert listed == list(REVIEWED[name]), name
        assert {case[0] for case in CASES[name][2]} == set(REVIEWED[name]), f"{name}: a field without a case"


@pytest.fixture
def scoped(api, tmp_path):
    Records(api.store, CONFIG_DOMAIN).put("targets", TARGETS)
    Records(api.store, CONFIG_DOMAIN).put("channels", CHANNELS)
    return api


def _apply(api, tmp_path: Path, tasks: list[dict]) -> None:
    path = tmp_path / "upkeep.yaml"
    path.write_text(yaml.safe_dump({"targets": TARGETS, "channels": CHANNELS, "tasks": tasks}))
    apply_file(api.settings, api.store, actor="test", prune=False, dry_run=False, path=path, echo=lambda line: None)


def _refused(response, fields: list[str], prefix: str) -> None:
    assert response.status_code in (403, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    named = [e["field"] for e in problem["errors"]] or [problem["field"]]
    for field in fields:
        assert f"{prefix}.{field}" in named, (field, problem)


@pytest.mark.parametrize("handler", sorted(CASES))
def test_host_scoped_values_come_only_from_the_file(scoped, tmp_path, handler):
    api_base, file_base, host_cases, accepted = CASES[handler]
    spec = REGISTRY.get(handler)
    overridable = spec.overridable_fields()
    file_tasks = [{"name": "base", "type": handler, "config": file_base}]
    file_tasks += [
        {"name": f"file-{i}", "type": handler, "config": {**file_base, **config}}
        for i, (_field, config, _named) in enumerate(host_cases)
    ]
    _apply(scoped, tmp_path, file_tasks)  # the same host-scoped values in upkeep.yaml apply
    for i, (_field, config, _named) in enumerate(host_cases):
        stored = scoped.get(f"/api/v1/scheduled-tasks/file-{i}", role="viewer").json()["config"]
        assert all(stored[k] == v for k, v in config.items()), (stored, config)

    for i, (_field, config, named) in enumerate(host_cases):
        if api_base is not None:
            body = {"name": f"api-{i}", "type": handler, "config": {**api_base, **config}}
            _refused(scoped.post("/api/v1/scheduled-tasks", json=body), named, "config")
        _refused(scoped.patch("/api/v1/scheduled-tasks/base", json={"config": config}), named, "config")
        keys = {n.split("[")[0].split(".")[0] for n in named}
        overrides = {k: config[k] for k in keys}
        expected = named if keys <= overridable else sorted(keys - overridable)[:1]  # not overridable at all
        _refused(scoped.post("/api/v1/scheduled-tasks/base/run", json={"overrides": overrides}), expected, "overrides")
    assert scoped.get("/api/v1/scheduled-tasks/base", role="viewer").json()["config"] == file_base

    for i, config in enumerate(accepted):
        if api_base is not None:
            body = {"name": f"ok-{i}", "type": handler, "config": {**api_base, **config}}
            response = scoped.post("/api/v1/scheduled-tasks", json=body)
            assert response.status_code == 201, response.text
        response = scoped.patch("/api/v1/scheduled-tasks/base", json={"config": config})
        assert response.status_code == 200, response.text
        overrides = {k: v for k, v in config.items() if k in overridable}
        if overrides:
            body = {"overrides": overrides, "dry_run": True}  # a restore runs for real only when confirmed
            response = scoped.post("/api/v1/scheduled-tasks/base/run", role="operator", json=body)
            assert response.status_code == 202, response.text


def test_an_env_reference_is_host_scoped_wherever_it_is(scoped):
    check = {"type": "http", "url": "http://127.0.0.1:9/x", "headers": {"Authorization": "Bearer ${env:PG_PASSWORD}"}}
    body = {"name": "leak", "type": "health.check", "config": {"checks": [check]}}
    _refused(scoped.post("/api/v1/scheduled-tasks", json=body), ["checks[0].headers.Authorization"], "config")
    body = {"name": "ping", "type": "debug.noop", "ping_url": "https://hc.example.org/${env:PG_PASSWORD}"}
    response = scoped.post("/api/v1/scheduled-tasks", json=body)
    assert response.status_code == 403 and response.json()["field"] == "ping_url", response.text


def test_an_operator_cannot_redirect_a_backup_with_an_override(scoped, tmp_path):
    """Reproduction: `overrides: {destination: ...}` sent a dump to any directory."""
    _apply(scoped, tmp_path, [{"name": "nightly-backup", "type": "backup.create", "config": {"source": "main"}}])
    response = scoped.post(
        "/api/v1/scheduled-tasks/nightly-backup/run",
        role="operator",
        json={"overrides": {"destination": str(tmp_path / "stolen")}},
    )
    _refused(response, ["destination"], "overrides")
    assert response.status_code == 403
    runs = scoped.get("/api/v1/scheduled-tasks/nightly-backup/runs", role="viewer").json()
    assert runs["total"] == 0
    by_name = scoped.post(
        "/api/v1/scheduled-tasks/nightly-backup/run", role="operator", json={"overrides": {"destination": "nightly"}}
    )
    assert by_name.status_code == 202, by_name.text


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (rule(pidfile="/run/victim.pid", signal="KILL"), "config.rules[0].pidfile"),
        (rule(create_mode="0666"), "config.rules[0].create_mode"),
    ],
    ids=["pidfile-and-signal", "create-mode"],
)
def test_the_api_cannot_signal_a_process_or_set_a_file_mode_through_logs_rotate(scoped, config, field):
    """Reproductions: logs.rotate with pidfile + signal KILL SIGKILLed an arbitrary process;
    paths + create_mode 0666 left a world-writable file."""
    response = scoped.post("/api/v1/scheduled-tasks", json={"name": "rot", "type": "logs.rotate", "config": config})
    assert response.status_code == 403, response.text
    assert field in [e["field"] for e in response.json()["errors"]]
    assert scoped.get("/api/v1/scheduled-tasks/rot").status_code == 404


def test_the_api_cannot_back_up_upkeeps_own_directory(scoped):
    """Reproduction: backup.create with a files or sqlite source read .upkeep/ into any destination."""
    data_dir = str(scoped.settings.resolved_data_dir)
    for source in ({"type": "files", "paths": [data_dir]}, {"type": "sqlite", "path": f"{data_dir}/upkeep.db"}):
        body = {"name": "grab", "type": "backup.create", "config": {"source": source, "destination": "nightly"}}
        response = scoped.post("/api/v1/scheduled-tasks", json=body)
        assert response.status_code == 403 and response.json()["field"] == "config.source", response.text


def test_the_api_cannot_point_a_process_check_at_a_file(scoped):
    """Reproduction: a process check's pidfile pointed at .upkeep/session.key echoed it into a result."""
    check = {"type": "process", "pidfile": str(scoped.settings.resolved_data_dir / "session.key")}
    body = {"name": "peek", "type": "health.check", "config": {"checks": [check]}}
    response = scoped.post("/api/v1/scheduled-tasks", json=body)
    assert response.status_code == 403 and response.json()["field"] == "config.checks[0].pidfile", response.text


def test_handler_schemas_expose_host_scoped_fields_for_the_ui(scoped):
    handlers = {h["name"]: h for h in scoped.get("/api/v1/handlers", role="viewer").json()}
    create = handlers["backup.create"]
    assert create["host_scoped"]["destination"]["refs"] == ["backups"]
    prop = create["config_schema"]["properties"]["destination"]
    assert prop["x-host-scoped"] is True and prop["x-inventory-refs"] == ["backups"]
    assert "compression" not in create["host_scoped"]

"""upkeep.yaml: parsing with line-numbered errors, settings merge, apply plans and export."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from upkeep.app import Upkeep
from upkeep.app.config import apply_file, export_config
from upkeep.config_file import (
    load_config,
    parse_config,
    render_template,
    settings_for,
    validate_tasks,
)
from upkeep.errors import ConfigError
from upkeep.settings import Settings
from upkeep.store.models import Base
from upkeep.store.records import CONFIG_DOMAIN, Records


def _dump(store) -> dict:
    with store.engine.connect() as conn:
        return {
            t.name: sorted(map(tuple, conn.execute(sa.select(t)).all()), key=repr) for t in Base.metadata.sorted_tables
        }


@pytest.fixture
def setup(tmp_path, sqlite_store):
    path = tmp_path / "upkeep.yaml"
    settings = settings_for(path, sqlite_store.url, environ={})

    def apply(text: str, **kw):
        path.write_text(text)
        kw.setdefault("prune", False)
        kw.setdefault("dry_run", False)
        lines: list[str] = []
        diff = apply_file(settings, sqlite_store, actor="test", echo=lines.append, **kw)
        return diff, "\n".join(lines)

    return settings, sqlite_store, apply


def test_yaml_errors_name_the_file_and_line():
    with pytest.raises(ConfigError, match=r"^upkeep.yaml line 3: .*mapping values are not allowed here"):
        parse_config("tasks:\n  - name: a\n    type: x: y\n", Path("upkeep.yaml"))
    with pytest.raises(ConfigError, match=r"line 3: duplicate key 'name' \(first on line 2\)"):
        parse_config("tasks:\n  - name: a\n    name: b\n", Path("upkeep.yaml"))
    with pytest.raises(ConfigError, match="unknown field|Extra inputs"):
        parse_config("taks: []\n", Path("upkeep.yaml"))


def test_task_errors_name_the_line_the_task_and_the_field():
    text = (
        "tasks:\n  - name: ok\n    type: debug.noop\n  - name: nap\n    type: debug.sleep\n    config: {seconds: x}\n"
    )
    with pytest.raises(ConfigError) as info:
        validate_tasks(parse_config(text, Path("upkeep.yaml")))
    message = str(info.value)
    assert message.startswith("upkeep.yaml line 4:") and "'nap'" in message and "config.seconds" in message
    dup = "tasks:\n  - {name: a, type: debug.noop}\n  - {name: a, type: debug.noop}\n"
    with pytest.raises(ConfigError, match="defined twice"):
        validate_tasks(parse_config(dup, Path("upkeep.yaml")))


def test_server_settings_sit_under_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "upkeep.yaml"
    path.write_text("server:\n  port: 9000\n  worker_processes: 2\n  data_dir: state\n")
    for key in ("UPKEEP_WORKER_PROCESSES", "UPKEEP_DATA_DIR", "UPKEEP_DATABASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("UPKEEP_PORT", "9100")
    settings = settings_for(path)
    assert settings.port == 9100 and settings.worker_processes == 2
    assert settings.resolved_data_dir == tmp_path / "state"
    assert settings_for(path, "sqlite:////tmp/x.db", environ={}).resolved_database_url == "sqlite:////tmp/x.db"
    assert settings_for(None, environ={"UPKEEP_CONFIG": str(path)}).config_path == path


def test_the_environment_sets_settings_as_pydantic_settings_read_it(tmp_path, monkeypatch):
    path = tmp_path / "upkeep.yaml"
    path.write_text("server:\n  host: 0.0.0.0\n")
    monkeypatch.setenv("upkeep_access_log", "true")  # names in any case
    monkeypatch.setenv("UPKEEP_AUTH", '{"proxy_header": "Remote-User", "trusted_proxies": ["10.0.0.0/8"]}')
    monkeypatch.setenv("UPKEEP_HEARTBEAT_SECONDS", "2.5")
    monkeypatch.setenv("UPKEEP_NOT_A_SETTING", "x")
    settings = settings_for(path)
    assert settings.access_log is True and settings.heartbeat_seconds == 2.5 and settings.host == "0.0.0.0"
    assert settings.auth.proxy_header == "Remote-User" and settings.auth.trusted_proxies == ["10.0.0.0/8"]
    assert Settings(config=path, heartbeat_seconds=7).heartbeat_seconds == 7  # keyword arguments win
    monkeypatch.setenv("UPKEEP_AUTH", "Remote-User")  # no JSON: the model refuses it, one clear line
    with pytest.raises(ConfigError, match="invalid setting: server.auth"):
        settings_for(path)
    monkeypatch.setenv("UPKEEP_AUTH", "{}")
    monkeypatch.setenv("UPKEEP_PORT", "eighty")
    with pytest.raises(ConfigError, match="invalid setting: server.port"):
        settings_for(path)


def test_the_init_template_validates_and_touches_nothing_outside_the_data_dir(tmp_path):
    text = render_template(tmp_path / ".upkeep")
    tasks = validate_tasks(parse_config(text, tmp_path / "upkeep.yaml"))
    assert all(t["tiers"] for t in tasks)
    assert {"health.report", "runs.cleanup_expired", "system.resources", "db.vacuum", "backup.create"} == {
        t["type"] for t in tasks
    }
    backup = next(t for t in tasks if t["type"] == "backup.create")
    assert backup["config"]["destination"] == str(tmp_path / ".upkeep" / "backups")


def test_apply_creates_updates_and_prunes_only_file_made_tasks(setup):
    settings, store, apply = setup
    diff, out = apply(
        "tasks:\n  - {name: a, type: gc.cleanup, schedule: '@daily', config: {retention_days: 9}}\n"
        "  - {name: b, type: debug.noop}\n"
    )
    assert [t["name"] for t in diff.create] == ["a", "b"] and "+ create task a" in out
    Upkeep(settings, store).create_task({"name": "api", "type": "debug.noop"}, actor="test")
    diff, out = apply(
        "tasks:\n  - {name: a, type: runs.cleanup_expired, schedule: '@daily', config: {retention_days: 3}}\n",
        prune=True,
    )
    assert "config.retention_days: 9 → 3" in out  # the alias and the canonical type are the same task
    assert diff.delete == ["b"] and "api" not in diff.delete
    tasks, _ = Upkeep(settings, store).list_tasks()
    assert sorted(t["name"] for t in tasks) == ["a", "api"]
    diff, out = apply(
        "tasks:\n  - {name: a, type: runs.cleanup_expired, schedule: '@daily', config: {retention_days: 3}}\n",
        prune=True,
    )
    assert not diff.changed and diff.unchanged == 1


def test_an_invalid_file_writes_nothing_and_dry_run_writes_nothing(setup):
    _settings, store, apply = setup
    apply("tasks:\n  - {name: a, type: debug.noop}\n")
    before = _dump(store)
    with pytest.raises(ConfigError):
        apply(
            "targets:\n  logs: {app: {paths: [/x]}}\ntasks:\n  - {name: a, type: debug.noop}\n"
            "  - {name: c, type: debug.noop}\n  - {name: z, type: debug.noop, schedule: '61 * * * *'}\n"
        )
    assert _dump(store) == before
    diff, out = apply(
        "targets:\n  logs: {app: {paths: [/x]}}\ntasks:\n  - {name: n, type: debug.noop}\n", dry_run=True, prune=True
    )
    assert diff.changed and "dry run: nothing was written" in out
    assert _dump(store) == before


def test_api_made_tasks_named_in_the_file_are_adopted(setup):
    settings, store, apply = setup
    Upkeep(settings, store).create_task({"name": "t", "type": "debug.noop"}, actor="test")
    diff, out = apply("tasks:\n  - {name: t, type: debug.noop}\n")
    assert diff.adopt == ["t"] and "now managed by the file" in out
    assert Upkeep(settings, store).get_task("t")["managed_by"] == "file"


def test_targets_and_channels_are_stored_unresolved_and_export_round_trips(setup, monkeypatch):
    settings, store, apply = setup
    monkeypatch.setenv("PG_PW", "resolved-secret")
    text = (
        "targets:\n  databases:\n    main: {url: 'postgresql://app:${env:PG_PW}@127.0.0.1/app'}\n"
        "channels:\n  ops: {url: '${env:OPS_URL}', tag: x}\n"
        "tasks:\n  - {name: every, type: debug.noop, schedule: '@every 10m', expect_success_within: 1h}\n"
        "  - {name: sleepy, type: debug.sleep, timeout_seconds: 30, notify: {channels: [ops]}}\n"
    )
    diff, out = apply(text)
    records = Records(store, CONFIG_DOMAIN)
    assert records.get("targets")["databases"]["main"]["url"] == "postgresql://app:${env:PG_PW}@127.0.0.1/app"
    assert records.get("channels") == {"ops": {"url": "${env:OPS_URL}", "tag": "x"}}
    exported = export_config(store)
    assert "resolved-secret" not in exported + out
    diff, out = apply(exported)
    assert not diff.changed, out
    assert not apply(text)[0].changed  # the original file still agrees (anchor and durations normalized)


def test_load_config_of_a_missing_file_says_run_init(tmp_path):
    with pytest.raises(ConfigError, match="upkeep init"):
        load_config(tmp_path / "nope.yaml")

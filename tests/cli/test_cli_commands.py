"""init, apply/export round trip, tasks, handlers, schedule explain, cron print, doctor, keys, --json."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import yaml


def test_init_writes_a_valid_default_creates_the_store_and_one_admin_key(cli):
    cli.config.unlink()
    result = cli("init")
    token = next(line.strip() for line in result.stdout.splitlines() if line.strip().startswith("upk_"))
    key_file = cli.data_dir / "admin.key"
    assert key_file.read_text().strip() == token
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    text = cli.config.read_text()
    assert text.lstrip().startswith("#") and "${env:" in text  # commented, documents secret references
    from upkeep.config_file import load_config, validate_tasks

    tasks = {t["name"]: t for t in validate_tasks(load_config(cli.config))}
    assert {t["type"] for t in tasks.values()} >= {"health.report", "runs.cleanup_expired", "system.resources"}
    for spec in tasks.values():  # nothing outside .upkeep/ is written to
        for value in json.dumps(spec["config"]).split('"'):
            if value.startswith("/") and value != "/":
                assert value.startswith(str(cli.data_dir)), value
    # refuses to overwrite; --force rewrites the file but does not mint a second admin key
    refused = cli("init", expect=2)
    assert "--force" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    again = cli("init", "--force")
    assert "upk_" not in again.stdout
    keys = json.loads(cli("keys", "list", "--json").stdout)
    assert [k["name"] for k in keys] == ["admin"]


def test_init_apply_export_round_trip_has_zero_changes(cli, tmp_path):
    cli.config.unlink()
    cli("init")
    first = cli("apply")
    assert "+ create task upkeep-health" in first.stdout
    assert "no changes" in cli("apply").stdout
    exported = tmp_path / "exported.yaml"
    cli("export", "-o", str(exported))
    data = yaml.safe_load(exported.read_text())
    assert {t["name"] for t in data["tasks"]} >= {"upkeep-health", "upkeep-history-cleanup"}
    diff = json.loads(cli("apply", "-f", str(exported), "--json").stdout)
    assert diff["create"] == [] and diff["update"] == {} and diff["delete"] == []
    assert json.loads(cli("apply", "--json").stdout)["update"] == {}
    assert "tasks:" in cli("export").stdout


def test_apply_prints_a_field_level_diff_and_prune_deletes_only_file_made_tasks(cli):
    cli.write("tasks:\n  - {name: a, type: debug.noop, schedule: '@daily'}\n  - {name: b, type: debug.noop}\n")
    cli("apply")
    cli("tasks", "create", "api-made", "--type", "debug.noop")
    cli.write("tasks:\n  - {name: a, type: debug.noop, schedule: '0 4 * * *', tiers: [daily]}\n")
    dry = cli("apply", "--dry-run", "--prune")
    before_dry = cli.dump()
    assert 'schedule: "@daily" → "0 4 * * *"' in dry.stdout and "- delete task b" in dry.stdout
    assert "dry run: nothing was written" in dry.stdout
    assert cli.dump() == before_dry
    kept = cli("apply")
    assert "b was made by the file but is no longer in it" in kept.stdout
    cli("apply", "--prune")
    names = [t["name"] for t in json.loads(cli("tasks", "list", "--json").stdout)["tasks"]]
    assert names == ["a", "api-made"]


def test_drift_on_file_made_tasks_is_shown_and_the_file_wins(cli):
    cli.write("tasks:\n  - {name: a, type: debug.sleep, schedule: '@daily', config: {seconds: 1}}\n")
    cli("apply")
    cli("tasks", "disable", "a")
    cli("tasks", "set", "a", "config.seconds=2")
    assert json.loads(cli("tasks", "show", "a", "--json").stdout)["drift"] == ["config", "enabled"]
    assert "drift" in cli("tasks", "show", "a").stdout
    out = cli("apply").stdout
    assert "! drift: task a was changed outside the file" in out and "config, enabled" in out
    assert "config.seconds: 2 → 1" in out and "enabled: false → true" in out
    shown = json.loads(cli("tasks", "show", "a", "--json").stdout)
    assert shown["drift"] == [] and shown["enabled"] is True
    audit_actors = {a["actor"] for a in cli_audit(cli)}
    assert any(actor.startswith("cli:") for actor in audit_actors)


def cli_audit(cli):
    from upkeep.app import Upkeep
    from upkeep.settings import Settings
    from upkeep.store.db import Store

    store = Store(cli.db_url)
    try:
        return Upkeep(Settings(config=cli.config), store).list_audit()[0]
    finally:
        store.dispose()


def test_secrets_stay_references_and_are_never_printed(cli, monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", "supersecretvalue")
    cli.write(
        "targets:\n  databases:\n    main: {url: 'postgresql://app:${env:PG_PW}@127.0.0.1/app'}\n"
        "channels:\n  ops: {url: 'json://127.0.0.1/hook?token=${env:HOOK_TOKEN}'}\n"
        "tasks:\n  - {name: a, type: debug.noop}\n"
    )
    out = cli("apply").stdout
    assert "targets: databases.main added" in out and "channels: ops added" in out
    exported = cli("export").stdout
    assert "${env:PG_PW}" in exported and "${env:HOOK_TOKEN}" in exported
    assert "supersecretvalue" not in exported + out
    cli.write(
        "targets:\n  databases:\n    main: {url: 'postgresql://app:hunter22@127.0.0.1/app', password: hunter22}\n"
    )
    warned = cli("apply").stdout
    assert "targets.databases.main.password holds a plain-text secret" in warned
    assert "hunter22" not in warned


def test_tasks_commands_go_through_the_service(cli):
    created = json.loads(
        cli(
            "tasks",
            "create",
            "t1",
            "--type",
            "gc.cleanup",
            "--schedule",
            "0 1 * * *",
            "--tz",
            "Europe/Zagreb",
            "--set",
            "retention_days=7",
            "--tier",
            "daily",
            "--json",
        ).stdout
    )
    assert created["type"] == "runs.cleanup_expired" and created["config"] == {"retention_days": 7}
    assert created["managed_by"] == "api"
    shown = cli("tasks", "show", "t1").stdout
    assert "Europe/Zagreb" in shown and "retention_days: 7" in shown
    cli("tasks", "set", "t1", "schedule=@weekly", "config.batch_size=10")
    task = json.loads(cli("tasks", "show", "t1", "--json").stdout)
    assert task["schedule"] == "@weekly" and task["config"] == {"retention_days": 7, "batch_size": 10}
    assert json.loads(cli("tasks", "disable", "t1", "--json").stdout)["enabled"] is False
    assert json.loads(cli("tasks", "list", "--disabled", "--json").stdout)["total"] == 1
    cli("tasks", "enable", "t1")
    assert "t1" in cli("tasks", "list").stdout
    cli("tasks", "delete", "t1", expect=2)  # no TTY and no --yes: refused, nothing deleted
    cli("tasks", "delete", "t1", "--yes")
    cli("tasks", "show", "t1", expect=2)


def test_handlers_list_and_show(cli):
    listing = json.loads(cli("handlers", "list", "--json").stdout)
    assert {"debug.noop", "shell.run", "runs.cleanup_expired"} <= {h["name"] for h in listing}
    shown = cli("handlers", "show", "gc.cleanup").stdout
    assert "alias of runs.cleanup_expired" in shown and "retention_days" in shown
    schema = json.loads(cli("handlers", "show", "debug.sleep", "--json").stdout)
    assert "seconds" in schema["config_schema"]["properties"] and "seconds" in schema["overridable"]
    cli("handlers", "show", "no.such", expect=2)


def test_schedule_explain_says_or_for_day_of_month_and_day_of_week(cli):
    out = cli("schedule", "explain", "0 3 1-7 * 0", "--count", "3").stdout
    assert "1 through 7 or on Sunday" in out
    data = json.loads(
        cli("schedule", "explain", "30 2 * * *", "--tz", "Europe/Zagreb", "--count", "2", "--json").stdout
    )
    assert len(data["next"]) == 2 and all(t.endswith(("+01:00", "+02:00")) for t in data["next"])
    assert "02:30:00" in data["next"][0]
    cli("schedule", "explain", "61 * * * *", expect=2)


def test_cron_print_is_an_absolute_crontab_for_the_tiers(cli):
    cli.write("tasks: []\n")
    out = cli("cron", "print").stdout
    entries = [line for line in out.splitlines() if line and not line.startswith("#") and "=" not in line.split()[0]]
    by_flag = {line.split()[-4]: line.split(None, 5)[:5] for line in entries}
    assert by_flag == {
        "--daily": ["0", "2", "*", "*", "*"],
        "--weekly": ["0", "3", "*", "*", "0"],
        "--monthly": ["0", "4", "1", "*", "*"],
        "--quarterly": ["0", "5", "1", "1,4,7,10", "*"],
        "--yearly": ["0", "6", "1", "1", "*"],
    }
    for line in entries:  # absolute paths, the config passed, output appended under .upkeep
        command = line.split(None, 5)[5]
        assert command.startswith("/") and f"--config {cli.config}" in command
        assert f">> {cli.data_dir / 'cron.log'} 2>&1" in command
        restricted = line.split()[2] != "*" and line.split()[4] != "*"
        assert not restricted  # never the day-of-month OR day-of-week trap


def test_doctor_passes_on_a_good_setup_and_says_how_to_fix_a_broken_one(cli):
    cli.config.unlink()
    cli("init")
    cli("apply")
    good = cli("doctor")
    assert "everything looks fine" in good.stdout
    report = json.loads(cli("doctor", "--json").stdout)
    assert report["ok"] is True and {c["name"] for c in report["checks"]} >= {"config", "store", "migrations"}
    os.chmod(cli.data_dir / "admin.key", 0o644)
    os.chmod(cli.data_dir, 0o777)
    cli.write(cli.config.read_text() + "  - {name: bad, type: debug.noop, schedule: '61 * * * *'}\n")
    bad = cli("doctor", expect=2)
    assert "FAIL config" in bad.stdout and "61" in bad.stdout
    assert "FAIL data directory" in bad.stdout and f"chmod 700 {cli.data_dir}" in bad.stdout
    assert f"chmod 600 {cli.data_dir / 'admin.key'}" in bad.stdout
    os.chmod(cli.data_dir, 0o700)


def test_doctor_reports_missing_binaries_and_an_old_schema(cli, monkeypatch):
    cli.write("tasks:\n  - {name: dump, type: shell.run, config: {command: [/bin/true]}}\n")
    import upkeep.engine.registry as registry

    spec = registry.REGISTRY.get("shell.run")
    monkeypatch.setattr(spec, "requires", ("upkeep-no-such-binary",))
    from upkeep.store.db import Store

    Store(cli.db_url).dispose()  # an empty database file: reachable, no schema
    out = cli("doctor", expect=2).stdout
    assert "FAIL binary upkeep-no-such-binary" in out and "needed by dump" in out
    assert "upkeep db upgrade" in out
    cli("db", "upgrade")
    assert json.loads(cli("db", "current", "--json").stdout)["up_to_date"] is True


def test_keys_create_list_revoke(cli):
    created = json.loads(cli("keys", "create", "--name", "ci", "--role", "operator", "--json").stdout)
    assert created["token"].startswith("upk_")
    listing = cli("keys", "list", "--json").stdout
    assert created["token"] not in listing and json.loads(listing)[0]["role"] == "operator"
    cli("keys", "create", "--name", "x", "--role", "root", expect=2)
    assert json.loads(cli("keys", "revoke", "ci", "--json").stdout)["revoked_at"]


def test_console_entry_point_works_without_a_tty(cli, subprocess_env):
    cli.write("tasks:\n  - {name: a, type: debug.noop, tiers: [daily]}\n")
    proc = subprocess.run(
        [sys.executable, "-c", "from upkeep.cli.main import main; main()", "apply"],
        env=subprocess_env,
        cwd=cli.root,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "+ create task a" in proc.stdout
    usage = subprocess.run(
        [sys.executable, "-m", "upkeep.cli.main", "tasks", "list", "--bogus"],
        env=subprocess_env,
        cwd=cli.root,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert usage.returncode == 2 and "Traceback" not in usage.stderr

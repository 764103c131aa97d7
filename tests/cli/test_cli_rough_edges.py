"""The CLI as an operator meets it: typed overrides, refusals before any run, exit codes that say
whether something ran, reasons printed where the operator looks, and "did you mean" for typos."""

from __future__ import annotations

import json
import sqlite3

import pytest


@pytest.fixture
def logs(cli):
    """Tasks over a real log file, and a restore task."""
    log = cli.root / "api.log"
    log.write_text(json.dumps({"level": "error", "time": "2026-11-20T10:00:00Z", "msg": "boom"}) + "\n")
    cli.write(
        f"""
tasks:
  - name: analyze
    type: logs.analyze
    config: {{paths: ["{log}"], window: all}}
  - name: analyze-nothing
    type: logs.analyze
    config: {{paths: ["{cli.root}/nowhere/*.log", "{cli.root}/gone.log"]}}
  - name: rotate
    type: logs.rotate
    config:
      rules: [{{paths: ["{log}"], size: 1M}}]
  - name: nightly-backup
    type: debug.noop
    tiers: [daily]
"""
    )
    cli("apply")
    return cli


def _runs(cli) -> list[dict]:
    return json.loads(cli("runs", "list", "--json").stdout)["runs"]


def test_an_unquoted_timestamp_override_is_typed_by_the_handler_model(logs):
    result = logs("run", "analyze", "--set", "since=2026-11-01T00:00:00Z", "--json")
    assert "Traceback" not in result.stdout + result.stderr
    run = json.loads(result.stdout)
    assert run["status"] == "completed", run
    assert run["config"]["since"] == "2026-11-01T00:00:00Z"
    assert run["result"]["window"]["since"] == "2026-11-01T00:00:00+00:00"
    assert run["result"]["targets"]["paths"]["errors"] == 1
    adhoc = logs(
        "run",
        "logs.analyze",
        "--set",
        f"paths=[{logs.root / 'api.log'}]",
        "--set",
        "since=2026-11-01",
        "--json",
        expect=1,
    )
    assert "no time zone" in json.loads(adhoc.stdout)["error"]  # the handler read the text, not a YAML date


def test_a_run_recorded_then_failed_on_bad_input_exits_1_not_2(logs):
    """2 says that nothing ran; here a run exists (and is counted), so 1."""
    result = logs("run", "analyze", "--set", "since=2026-11-01", expect=1)
    assert "failed" in result.stdout and "no time zone" in result.stdout
    assert [r["status"] for r in _runs(logs)] == ["failed"]


def test_an_analysis_of_globs_matching_nothing_fails_naming_them(logs):
    result = logs("run", "analyze-nothing", expect=1)
    final = result.stdout.strip().splitlines()[-1]
    assert "failed" in final and "nothing was analysed" in final
    assert f"{logs.root}/nowhere/*.log" in final and f"{logs.root}/gone.log" in final


def test_rotate_prints_why_a_file_was_not_rotated(logs):
    result = logs("run", "rotate")
    final = result.stdout.strip().splitlines()[-1]
    assert "rotated 0 of 1" in final and "not rotated: api.log: size" in final, final
    assert f"not rotating {logs.root / 'api.log'}: size" in result.stdout  # the event, as it streams


@pytest.mark.parametrize(
    ("args", "guess"),
    [
        (("run", "helth.check"), "did you mean 'health.check'?"),
        (("run", "nightly-bakup"), "did you mean 'nightly-backup'?"),
        (("tasks", "show", "nightly-bakup"), "did you mean 'nightly-backup'?"),
        (("tasks", "create", "x", "--type", "logs.rotat"), "did you mean 'logs.rotate' or 'logs.logrotate'?"),
    ],
)
def test_a_typo_gets_did_you_mean(logs, args, guess):
    before = logs.dump()
    result = logs(*args, expect=2)
    assert guess in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert logs.dump() == before


def _catalogued_backup(cli) -> tuple[str, str]:
    db = cli.root / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table t(x)")
    made = cli(
        "run", "backup.create", "--json",
        "--set", "source.type=sqlite", "--set", f"source.path={db}",
        "--set", "source.name=application-database-main",
        "--set", f"destination={cli.root / 'backups'}",
    )  # fmt: skip
    return json.loads(made.stdout)["result"]["backup_id"], str(db)


def test_a_restore_without_yes_is_refused_before_any_run_exists(logs):
    backup_id, db = _catalogued_backup(logs)
    logs.write(
        logs.config.read_text()
        + f"""  - name: restore-app
    type: backup.restore
    config: {{backup: latest, allow_unverified: true, target_path: "{db}"}}
  - name: restore-in-tier
    type: backup.restore
    tiers: [daily]
    config: {{backup: latest, allow_unverified: true, target_path: "{db}"}}
"""
    )
    logs("apply")
    before = logs.dump()
    for args in (
        ("backups", "restore", backup_id, "--target-path", db),
        ("run", "backup.restore", "--set", f"backup={backup_id}", "--set", f"target_path={db}"),
        ("run", "restore-app"),
        ("tasks", "trigger", "restore-app"),
        ("run", "--daily"),
    ):
        result = logs(*args, expect=2)
        assert "confirm" in result.stderr and "Traceback" not in result.stderr, args
        assert logs.dump() == before, args  # no run, no audit entry: nothing counts it as a failure
    assert "restore-in-tier" in logs("run", "--daily", expect=2).stderr
    planned = logs("run", "restore-app", "--dry-run")
    assert "dry run: would restore" in planned.stdout


def test_backups_list_on_an_80_column_terminal_shows_whole_ids(logs, monkeypatch):
    backup_id, _ = _catalogued_backup(logs)
    monkeypatch.setenv("COLUMNS", "80")
    listed = logs("backups", "list").stdout
    assert max(len(line) for line in listed.splitlines()) <= 80
    assert backup_id in listed and "application-database-main" in listed

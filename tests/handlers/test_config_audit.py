"""config.audit: every finding kind with file, line and key; nothing executed; no secret value shown."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support.contexts import events_of, run_handler
from upkeep.app.run_services import RunServices
from upkeep.handlers.audit.config import parse_env_text
from upkeep.settings import Settings

FIXTURES = Path(__file__).parent.parent / "fixtures" / "env"
PWNED = Path("/tmp/upkeep-pwned")
SECRET_VALUES = [
    "CHANGE_ME_secret_key",
    "tiny-token-value",
    "a-sufficiently-long-random-secret-value-0123456789",
    "duplicate-but-also-long-enough-secret-value-0123456789",
    "changeme",
]


@pytest.fixture
def env_dir(tmp_path) -> Path:
    directory = tmp_path / "app"
    directory.mkdir()
    shutil.copy(FIXTURES / "app.env", directory / ".env")
    shutil.copy(FIXTURES / "app.env.example", directory / ".env.example")
    return directory


def _by_check(result: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in result["findings"]:
        out.setdefault(f["check"], []).append(f)
    return out


def test_every_finding_kind_is_reported_with_file_line_and_key(sqlite_store, env_dir, tmp_path):
    PWNED.unlink(missing_ok=True)
    env = env_dir / ".env"
    os.chmod(env, 0o644)
    if shutil.which("git"):
        subprocess.run(["git", "init", "-q", str(env_dir)], check=True)
        subprocess.run(["git", "-C", str(env_dir), "add", ".env"], check=True)
    result = run_handler(
        sqlite_store,
        "config.audit",
        {
            "paths": [str(env), str(tmp_path / "missing.env")],
            "required_keys": ["ADMIN_EMAIL", "MAIL_FROM"],
            "validate_upkeep_config": False,
        },
    )
    found = _by_check(result)
    where = {(f["check"], f["line"], f["key"]) for f in result["findings"]}
    assert {
        ("placeholder", 3, "SECRET_KEY"),
        ("placeholder", 5, "SMTP_PASSWORD"),
        ("placeholder", 6, "SENTRY_DSN"),
    } <= where
    assert ("short_secret", 4, "API_TOKEN") in where
    assert ("empty_required", 7, "ADMIN_EMAIL") in where
    assert ("duplicate_key", 9, "JWT_SECRET") in where
    assert {("command_substitution", 10, "X"), ("command_substitution", 11, "Y")} <= where
    assert not any(f["key"] == "Z" for f in found["command_substitution"])  # single quotes stay literal
    assert ("not_assignment", 13, None) in where
    assert ("syntax", 16, "BROKEN") in where
    assert {f["key"] for f in found["missing_required"]} == {"MAIL_FROM", "REDIS_URL"}  # REDIS_URL: .env.example
    assert found["permissions"][0]["file"] == str(env)
    assert found["missing_file"][0]["file"] == str(tmp_path / "missing.env")
    if shutil.which("git"):
        assert found["tracked_by_git"][0]["severity"] == "critical"
    assert all(f["file"] for f in result["findings"] if f["check"] != "git")
    assert all(f"{env}:{f['line']}" in f["message"] for f in result["findings"] if f["line"])
    assert result["outcome"] == "critical"
    assert not PWNED.exists(), "config.audit executed a command from the .env file"


def test_no_secret_value_appears_in_the_result_or_the_events(sqlite_store, env_dir):
    result = run_handler(
        sqlite_store, "config.audit", {"paths": [str(env_dir / ".env")], "validate_upkeep_config": False}
    )
    shown = json.dumps(result) + json.dumps(events_of(sqlite_store, result["_run_id"]))
    for value in SECRET_VALUES:
        assert value not in shown


def test_a_command_substitution_is_reported_and_never_executed(sqlite_store, tmp_path):
    PWNED.unlink(missing_ok=True)
    env = tmp_path / ".env"
    env.write_text("X=$(touch /tmp/upkeep-pwned)\n")
    os.chmod(env, 0o600)
    result = run_handler(
        sqlite_store, "config.audit", {"paths": [str(env)], "check_git": False, "validate_upkeep_config": False}
    )
    assert [(f["check"], f["line"], f["key"]) for f in result["findings"]] == [("command_substitution", 1, "X")]
    assert not PWNED.exists()


def test_a_clean_private_file_is_ok(sqlite_store, tmp_path):
    env = tmp_path / "prod.env"
    env.write_text("# ok\nexport SECRET_KEY='0123456789abcdef0123456789abcdef'\nDEBUG=false # comment\n")
    os.chmod(env, 0o600)
    result = run_handler(
        sqlite_store, "config.audit", {"paths": [str(env)], "required_keys": ["DEBUG"], "validate_upkeep_config": False}
    )
    assert result["outcome"] == "ok", result["findings"]
    assert result["files"][0]["keys"] == 2


def test_parser_reads_quotes_exports_comments_and_multiline_values():
    parsed = parse_env_text(
        'export A="x \\"y\\" # not a comment"\nB=plain # comment\nC=\'$(literal)\'\nD="two\nlines"\nE=a#b\n'
    )
    values = {e.key: e.value for e in parsed.entries}
    assert values == {"A": 'x "y" # not a comment', "B": "plain", "C": "$(literal)", "D": "two\nlines", "E": "a#b"}
    assert not parsed.problems
    assert not any(e.substitution for e in parsed.entries)


def test_upkeep_yaml_is_validated_too(sqlite_store, tmp_path):
    config = tmp_path / "upkeep.yaml"
    config.write_text(
        "channels:\n  mail: {url: 'mailto://ops:hunter2hunter2@smtp.example.com'}\n"
        "tasks:\n  - {name: t1, type: runs.cleanup_stale, schedule: '@every 5m'}\n"
    )
    services = RunServices(sqlite_store, Settings(config=config))
    result = run_handler(sqlite_store, "config.audit", {"upkeep_config": str(config)}, services=services)
    assert result["upkeep_config"] == str(config)
    assert [f["check"] for f in result["findings"]] == ["plain_secret"]
    assert "hunter2" not in json.dumps(result)
    config.write_text("tasks:\n  - {name: t1, type: no.such_handler}\n")
    result = run_handler(sqlite_store, "config.audit", {}, services=services)
    assert result["outcome"] == "critical"
    assert "no.such_handler" in result["findings"][0]["message"]

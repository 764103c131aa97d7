"""Bad input: exit 2, one clear line on stderr, no traceback, and nothing written to the store."""

from __future__ import annotations

import subprocess
import sys

import pytest

GOOD = """
tasks:
  - name: keep
    type: debug.noop
    schedule: "@daily"
"""


@pytest.fixture
def seeded(cli):
    cli.write(GOOD)
    cli("apply")
    return cli


def _assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("task_yaml", "needles"),
    [
        ('    schedule: "61 * * * *"\n', ("61", "minute")),
        ('    schedule: "@daily"\n    timezone: Mars/Olympus\n', ("Mars/Olympus",)),
        ("    config: {seconds: many}\n", ("config.seconds", "bad")),
        ("    config: {secs: 1}\n", ("config.secs", "unknown field")),
    ],
    ids=["invalid-cron", "unknown-timezone", "invalid-config-value", "unknown-config-field"],
)
def test_apply_of_an_invalid_task_writes_nothing_and_names_the_problem(seeded, task_yaml, needles):
    before = seeded.dump()
    seeded.write(GOOD + "  - name: bad\n    type: debug.sleep\n" + task_yaml)
    result = seeded("apply", expect=None)
    _assert_one_line_error(result, "bad", "upkeep.yaml line", *needles)
    assert seeded.dump() == before


def test_apply_with_an_unknown_task_type_writes_nothing(seeded):
    before = seeded.dump()
    seeded.write(GOOD + "  - name: bad\n    type: debug.explode\n")
    result = seeded("apply", expect=None)
    _assert_one_line_error(result, "debug.explode", "unknown task type", "known debug handlers")
    assert seeded.dump() == before


def test_a_bad_task_anywhere_means_the_good_ones_are_not_written_either(seeded):
    before = seeded.dump()
    seeded.write(
        GOOD + "  - name: new-good\n    type: debug.noop\n  - name: bad\n    type: debug.noop\n"
        "    schedule: '61 * * * *'\n"
    )
    result = seeded("apply", expect=None)
    _assert_one_line_error(result, "line 8")
    assert seeded.dump() == before


def test_yaml_syntax_error_names_the_file_and_line(seeded):
    before = seeded.dump()
    seeded.write(GOOD + "  - name: broken\n    type: debug.noop\n    config: {a: 1\n")
    result = seeded("apply", expect=None)
    _assert_one_line_error(result, "upkeep.yaml line")
    assert seeded.dump() == before
    seeded.write("tasks:\n  - name: a\n    type: debug.noop\n  name: : b\n")
    _assert_one_line_error(seeded("tasks", "list", expect=None), "upkeep.yaml line 4")


def test_tasks_create_with_bad_input_writes_nothing(seeded):
    before = seeded.dump()
    cases = [
        (["--type", "debug.noop", "--schedule", "61 * * * *"], "minute"),
        (["--type", "debug.noop", "--schedule", "@daily", "--tz", "Nowhere/City"], "Nowhere/City"),
        (["--type", "no.such"], "unknown task type"),
        (["--type", "debug.sleep", "--set", "seconds=-1"], "config.seconds"),
    ]
    for args, needle in cases:
        _assert_one_line_error(seeded("tasks", "create", "x", *args, expect=None), needle)
    assert seeded.dump() == before


def test_the_local_cli_may_set_host_scoped_values(seeded):
    """The CLI's user controls the host and the config file already: a command is theirs to give."""
    result = seeded("tasks", "create", "sh", "--type", "shell.run", "--set", "command=[ls]", expect=None)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "created task sh" in result.stdout


def test_invalid_server_setting_is_one_line(cli):
    cli.write("server:\n  port: lots\n")
    _assert_one_line_error(cli("tasks", "list", expect=None), "server.port")
    cli.write("server:\n  prot: 1\n")
    _assert_one_line_error(cli("tasks", "list", expect=None), "prot")


def test_unreachable_database_is_exit_2_one_line_no_password_nothing_written(cli, monkeypatch, subprocess_env):
    url = "postgresql+psycopg://u:secretpw@127.0.0.1:1/x"
    cli.write(GOOD)
    before = sorted(p.name for p in cli.root.rglob("*"))
    monkeypatch.setenv("UPKEEP_DATABASE_URL", url)
    for args in (["apply"], ["tasks", "list", "--json"], ["keys", "list"]):
        result = cli(*args, expect=None)
        _assert_one_line_error(result, "cannot connect to the database")
        assert "secretpw" not in result.stderr + result.stdout
    subprocess_env["UPKEEP_DATABASE_URL"] = url
    proc = subprocess.run(  # a real process without a TTY: the exit code and stderr as a shell sees them
        [sys.executable, "-m", "upkeep.cli.main", "run", "debug.noop"],
        env=subprocess_env,
        cwd=cli.root,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot connect to the database"), proc.stderr
    assert "secretpw" not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr
    assert sorted(p.name for p in cli.root.rglob("*")) == before


def test_a_run_that_cannot_reach_its_server_exits_1_naming_why_and_no_password(tmp_path):
    """Found during the run, not before it: the run was recorded and failed, so exit 1 (2 says
    that nothing ran), and its error says what to fix."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "UPKEEP_CONFIG": str(tmp_path / "upkeep.yaml"), "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "upkeep.cli.main",
            "run",
            "db.vacuum",
            "--set",
            "target=postgresql://app:s3cret-pw@127.0.0.1:1/app",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "run 1 of db.vacuum: failed" in done.stdout
    assert "cannot connect" in done.stdout.lower() or "cannot connect" in done.stderr.lower()
    assert "s3cret-pw" not in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr

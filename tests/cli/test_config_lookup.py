"""No silent instance: without a config file upkeep says where it looked, exits 2 and creates
nothing; it finds the user's and the system's config, and names one it uses on a terminal only."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from upkeep.cli.main import app
from upkeep.settings import SYSTEM_CONFIG, SYSTEM_DATA_DIR, Settings


@pytest.fixture
def empty(tmp_path, subprocess_env, monkeypatch):
    """An empty working directory, a home without a user config, no UPKEEP_* variables (for this
    process and for subprocesses)."""
    assert not SYSTEM_CONFIG.exists(), "this host has a system-wide upkeep config"
    (tmp_path / "upkeep.yaml").unlink()
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    env = {k: v for k, v in subprocess_env.items() if k not in ("UPKEEP_CONFIG", "XDG_CONFIG_HOME")}
    env["HOME"] = str(home)
    for key in list(os.environ):
        if key.startswith("UPKEEP_") or key == "XDG_CONFIG_HOME":
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    return work, home, env


def invoke(*args: str):
    """The CLI in this process (no terminal)."""
    return CliRunner().invoke(app, list(args))


def upkeep(work: Path, env: dict, *args: str, stderr=subprocess.PIPE) -> subprocess.CompletedProcess:
    """The CLI as a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "upkeep.cli.main", *args],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        timeout=60,
    )


def test_without_a_config_every_command_exits_2_naming_where_it_looked_and_creates_nothing(empty):
    work, home, env = empty
    for args in (("tasks", "list"), ("run", "--daily"), ("doctor",), ("serve",), ("apply",), ("keys", "list")):
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        line = result.stderr.strip()
        assert line.startswith("error: no upkeep.yaml found") and len(line.splitlines()) == 1, line
        for place in (work / "upkeep.yaml", home / ".config" / "upkeep" / "upkeep.yaml", SYSTEM_CONFIG):
            assert str(place) in line, (place, line)
        assert "upkeep init" in line
        assert list(work.iterdir()) == [] and list(home.iterdir()) == [], args


def test_the_commands_that_need_no_config_still_work_without_one(empty):
    work, _home, env = empty
    for args in (("--help",), ("version",), ("schedule", "explain", "0 3 * * 0"), ("handlers", "list")):
        result = invoke(*args)
        assert result.exit_code == 0, (args, result.stderr)
    assert "db.vacuum" in invoke("handlers", "show", "db.vacuum").stdout
    assert list(work.iterdir()) == []
    made = invoke("init")
    assert made.exit_code == 0, made.stderr
    assert (work / "upkeep.yaml").is_file() and (work / ".upkeep").is_dir()


def test_a_named_config_that_does_not_exist_is_exit_2(empty, monkeypatch):
    work, _home, env = empty
    result = invoke("--config", str(work / "nope.yaml"), "tasks", "list")
    assert result.exit_code == 2 and f"{work / 'nope.yaml'} (--config)" in result.stderr
    monkeypatch.setenv("UPKEEP_CONFIG", str(work / "gone.yaml"))
    result = invoke("tasks", "list")
    assert result.exit_code == 2 and "(UPKEEP_CONFIG)" in result.stderr
    assert list(work.iterdir()) == []


def test_the_users_config_is_found_and_named_on_a_terminal_only(empty):
    work, home, env = empty
    user_config = home / ".config" / "upkeep" / "upkeep.yaml"
    user_config.parent.mkdir(parents=True)
    user_config.write_text("tasks: [{name: nightly, type: debug.noop}]\n")
    assert invoke("apply").exit_code == 0
    piped = upkeep(work, env, "tasks", "list")
    assert piped.returncode == 0 and "nightly" in piped.stdout
    assert piped.stderr == ""  # cron mail stays quiet
    main, side = pty.openpty()
    try:
        on_terminal = upkeep(work, env, "tasks", "list", stderr=side)
        os.close(side)
        said = os.read(main, 4096).decode()
    finally:
        os.close(main)
    assert on_terminal.returncode == 0
    assert f"using {user_config}" in said
    assert (user_config.parent / ".upkeep" / "upkeep.db").is_file()
    assert list(work.iterdir()) == []


def test_the_system_config_keeps_its_data_in_var_lib():
    assert Settings(config=SYSTEM_CONFIG).resolved_data_dir == SYSTEM_DATA_DIR == Path("/var/lib/upkeep")
    assert Settings(config=Path("/srv/app/upkeep.yaml")).resolved_data_dir == Path("/srv/app/.upkeep")

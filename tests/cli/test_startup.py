"""What the CLI loads: ``upkeep --help`` none of the commands' modules, a command only its own.

Checked by the modules a real process has imported, never by timings.
"""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from upkeep.cli.main import COMMANDS, app, load_command

# What ``upkeep --help`` must not import: the store's and the models' libraries, the output
# library, the handlers, the API and the distributed mode.
NOT_FOR_HELP = ("sqlalchemy", "pydantic", "rich", "yaml", "fastapi", "celery", "upkeep.handlers", "upkeep.store")

REPORT_MODULES = """
import sys
from upkeep.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("MODULES", " ".join(sorted(sys.modules)), file=sys.stderr)
sys.exit(code)
"""


def imported_by(
    *args: str, env: dict[str, str] | None = None, cwd=None
) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``upkeep ARGS`` in a fresh interpreter; its output and the modules it had imported at exit."""
    proc = subprocess.run(
        [sys.executable, "-c", REPORT_MODULES, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    line = next(line for line in proc.stderr.splitlines() if line.startswith("MODULES "))
    return proc, set(line.split()[1:])


def loaded(modules: set[str], package: str) -> list[str]:
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


def test_help_lists_every_command_without_importing_the_store_models_or_any_command(subprocess_env):
    for args in (["--help"], ["-h"], []):
        proc, modules = imported_by(*args, env=subprocess_env)
        shown = proc.stdout if args else proc.stderr  # without a command, the help goes to stderr
        assert "Usage: upkeep" in shown, proc.stderr
        for name, (_module, _attr, help_text) in COMMANDS.items():
            assert f"  {name} " in shown and help_text.split()[0] in shown, name
        for package in NOT_FOR_HELP:
            assert loaded(modules, package) == [], (args, package)
        commands_loaded = {module for module, _attr, _help in COMMANDS.values()} & modules
        assert commands_loaded <= {"upkeep.cli.main"}, commands_loaded


def test_a_command_loads_its_own_module_only(subprocess_env):
    proc, modules = imported_by("schedule", "explain", "@daily", env=subprocess_env)
    assert proc.returncode == 0 and "next 5" in proc.stdout, proc.stderr
    assert "upkeep.cli.schedule" in modules
    others = {module for module, _attr, _help in COMMANDS.values()} - {"upkeep.cli.schedule", "upkeep.cli.main"}
    assert others & modules == set()
    assert loaded(modules, "sqlalchemy") == [] and loaded(modules, "upkeep.handlers") == []


def test_every_command_of_the_table_loads_with_the_tables_help():
    for name, (_module, _attr, help_text) in COMMANDS.items():
        command = load_command(name)
        assert command.name == name
        assert command.help == help_text, name


def test_a_group_is_listed_and_runs_after_it_loads():
    runner = CliRunner()
    group_help = runner.invoke(app, ["tasks", "--help"])
    assert group_help.exit_code == 0 and "list " in group_help.stdout and "trigger " in group_help.stdout
    typo = runner.invoke(app, ["tasks", "lst"])
    assert typo.exit_code == 2 and "Did you mean 'list'" in typo.stderr
    root_typo = runner.invoke(app, ["taks"])
    assert root_typo.exit_code == 2 and "Did you mean 'tasks'" in root_typo.stderr


def test_an_unknown_command_is_a_usage_error_not_a_lookup_failure():
    result = CliRunner().invoke(app, ["no-such-command"])
    assert result.exit_code == 2 and "No such command 'no-such-command'" in result.stderr
    assert "Traceback" not in result.stderr


# What a command that reads the SQLite store must not import: another store's dialect (PostgreSQL's
# with all its drivers), the handlers, the executor, the API and the HTTP pieces it shares with the UI,
# the distributed mode, the alerting.
NOT_FOR_READING = (
    "sqlalchemy.dialects.postgresql",
    "asyncpg",
    "psycopg",
    "upkeep.handlers",
    "upkeep.engine.pool",
    "upkeep.engine.context",
    "upkeep.api",
    "upkeep.http",
    "fastapi",
    "uvicorn",
    "celery",
    "apprise",
    "upkeep.notify",
    "upkeep.heartbeats",
)


# What listing tasks must not import either: it reads one Core table, so neither the ORM and the
# models it maps nor the use cases that write (the run lifecycle, the task model, the registry of
# handlers), nor pydantic-settings (``Settings`` reads its environment variables itself), nor, its
# output going to no terminal, Rich.
NOT_FOR_LISTING = (
    "rich",
    "sqlalchemy.orm",
    "upkeep.store.models",
    "upkeep.engine.lifecycle",
    "upkeep.engine.scheduler",
    "upkeep.engine.taskspec",
    "upkeep.engine.registry",
    "upkeep.service",
    "alembic",
    "pydantic_settings",
)


def test_tasks_list_reads_the_store_without_loading_what_it_does_not_use(cli, subprocess_env):
    cli.write("tasks:\n  - {name: nightly-noop, type: debug.noop, schedule: '0 3 * * *', tiers: [daily]}\n")
    cli("apply")
    for args in (["tasks", "list"], ["tasks", "list", "--json", "--tier", "daily"]):
        proc, modules = imported_by(*args, env=subprocess_env, cwd=cli.root)
        assert proc.returncode == 0 and "nightly-noop" in proc.stdout, proc.stderr
        assert "sqlalchemy.dialects.sqlite" in modules  # it did read the store
        for package in NOT_FOR_READING + NOT_FOR_LISTING:
            assert loaded(modules, package) == [], (args, package)
        # the table shows no schedule in words, so it does not load the schedules' parsers
        assert ("--json" in args) == bool(loaded(modules, "cronsim")), args


# What making runs now must not import either (a handler type's, a task's, a tier's, as cron runs
# them): the runs are created, followed and printed with Core statements, so neither the ORM and the
# models it maps nor the use cases that edit tasks nor the task model.
NOT_FOR_RUNNING = (
    "sqlalchemy.orm",
    "upkeep.store.models",
    "upkeep.app.usecases",
    "upkeep.app.tasks",
    "upkeep.engine.taskspec",
    "alembic",
)


def test_running_now_loads_neither_the_orm_nor_the_use_cases_that_edit_tasks(cli, subprocess_env):
    cli.write("tasks:\n  - {name: nightly-noop, type: debug.noop, schedule: '0 3 * * *', tiers: [daily]}\n")
    cli("apply")
    for args in (["debug.noop"], ["nightly-noop"], ["--tier", "daily"]):
        proc, modules = imported_by("run", *args, "--json", env=subprocess_env, cwd=cli.root)
        assert proc.returncode == 0 and '"status": "completed"' in proc.stdout, (args, proc.stderr)
        for package in NOT_FOR_RUNNING:
            if package == "upkeep.engine.taskspec" and "--tier" in args:
                continue  # a tier's name is checked against the task model's tiers
            assert loaded(modules, package) == [], (args, package)


# The console script with a command in place of ``upkeep.cli.main.main``: what the collector's
# state was as the command started, in a child forked from it, and once the command ran a while.
COLLECTOR_STATES = """
import gc, os, sys, time
import upkeep.cli.main
from upkeep.cli import script

def command():
    states = {"start": gc.isenabled()}
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, b"1" if gc.isenabled() else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    states["forked child"] = os.read(read, 1) == b"1"
    deadline = time.monotonic() + 60
    while not gc.isenabled() and time.monotonic() < deadline:
        time.sleep(0.05)
    states["later"] = gc.isenabled()
    print(states)

upkeep.cli.main.main = command
script.main()
"""


def test_the_console_script_starts_without_the_collector_and_brings_it_back_for_what_lasts():
    proc = subprocess.run(
        [sys.executable, "-c", COLLECTOR_STATES], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip() == "{'start': False, 'forked child': True, 'later': True}", proc.stderr


def test_the_installed_upkeep_command_is_the_console_script():
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="upkeep")
    assert script.value == "upkeep.cli.script:main"


# The console script's end: a command (here ``schedule explain``) whose process also holds an exit
# handler and, when asked, a thread of its own that is still working when the command returns.
ENDING = """
import atexit, os, sys, threading, time
from upkeep.cli.main import main

atexit.register(lambda: print("exit handler ran", file=sys.stderr))
if sys.argv[1] == "thread":
    def work():
        time.sleep(0.5)
        print("thread finished", file=sys.stderr)
    threading.Thread(target=work).start()
sys.argv[1:] = ["schedule", "explain", "@daily"]
main()
"""


def test_the_console_script_ends_without_teardown_yet_with_its_exit_handlers_and_threads(subprocess_env):
    for threads in ("none", "thread"):
        proc = subprocess.run(
            [sys.executable, "-c", ENDING, threads],
            env=subprocess_env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        assert proc.returncode == 0 and "next 5" in proc.stdout, proc.stderr
        assert "exit handler ran" in proc.stderr
        # a thread the normal exit would wait for is waited for
        assert ("thread finished" in proc.stderr) == (threads == "thread"), proc.stderr

"""``upkeep run``: foreground runs with streamed events, exit codes, tiers, timeouts."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psutil
import pytest

TASKS = """
tasks:
  - name: nap
    type: debug.sleep
    config: {seconds: 5}
  - name: quick
    type: debug.noop
    schedule: "@daily"
    tiers: [daily, weekly]
  - name: broken
    type: debug.fail
    tiers: [weekly]
  - name: bad-news
    type: debug.sleep
    config: {seconds: 0, outcome: critical}
  - name: forked-sleeps
    type: shell.run
    timeout_seconds: 2
    config:
      command: "sleep 61.5 & sleep 61.5 & wait"
      shell: true
"""


@pytest.fixture
def tasks(cli):
    cli.write(TASKS)
    cli("apply")
    return cli


def test_run_of_a_handler_type_streams_events_and_exits_0(cli):
    result = cli("run", "debug.noop")
    assert "started: attempt 1 of debug.noop" in result.stdout
    assert "completed (ok)" in result.stdout and "nothing to do" in result.stdout


def test_run_of_a_task_with_an_override_uses_it(tasks):
    result = tasks("run", "nap", "--set", "seconds=0.2", "--json")
    view = json.loads(result.stdout)
    assert view["status"] == "completed" and view["task_name"] == "nap"
    assert view["config"]["seconds"] == 0.2  # a YAML scalar, not the string "0.2"
    assert view["summary"] == "slept 0.2s"


def test_exit_codes_follow_status_and_outcome(tasks):
    from upkeep.cli.run import exit_code_of

    critical = tasks("run", "bad-news", expect=1)
    assert "completed (critical)" in critical.stdout
    assert exit_code_of({"status": "completed", "outcome": "warning"}) == 0
    assert [exit_code_of({"status": s, "outcome": None}) for s in ("failed", "timed_out", "cancelled")] == [1, 1, 1]
    tasks("run", "nap", "--set", "busy=true", expect=2)  # not overridable: refused before any run
    tasks("run", "--daily", "quick", expect=2)
    tasks("run", "--daily", "--weekly", expect=2)
    tasks("run", "--yearly", expect=2)  # no task has that tier
    tasks("run", expect=2)


def test_run_tier_runs_each_task_and_prints_a_summary(tasks):
    result = tasks("run", "--tier", "weekly", expect=1)
    out = result.stdout
    assert "tier weekly: 2 task(s)" in out
    assert "failing on purpose" in out  # the failed run's events are streamed
    assert "1 of 2 run(s) ok, 1 not ok" in out
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert any("broken" in r and "failed" in r for r in rows) and any("quick" in r and "completed" in r for r in rows)
    data = json.loads(tasks("run", "--daily", "--json").stdout)
    assert data["exit_code"] == 0
    assert [(r["task_name"], r["origin"], r["status"]) for r in data["runs"]] == [("quick", "tier", "completed")]


def test_shell_run_timeout_kills_the_whole_process_tree(tasks):
    result = tasks("run", "forked-sleeps", "--json", expect=1)
    view = json.loads(result.stdout)
    assert view["status"] == "timed_out"
    started = time.mktime(time.strptime(view["started_at"][:19], "%Y-%m-%dT%H:%M:%S"))
    finished = time.mktime(time.strptime(view["finished_at"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert finished - started <= 4
    left = [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [])[:2] == ["sleep", "61.5"]]
    assert left == []


def test_runs_commands_show_the_history(tasks):
    view = json.loads(tasks("run", "quick", "--dry-run", "--json").stdout)
    assert view["dry_run"] is True and view["status"] == "completed"
    listing = json.loads(tasks("runs", "list", "--json").stdout)
    run_id = listing["runs"][0]["id"]
    assert listing["runs"][0]["task_name"] == "quick"
    assert json.loads(tasks("runs", "show", str(run_id), "--json").stdout)["status"] == "completed"
    events = json.loads(tasks("runs", "logs", str(run_id), "--json").stdout)
    assert [e["event"] for e in events][0] == "started" and events[-1]["event"] == "finished"
    assert "finished" in tasks("runs", "logs", str(run_id), "--follow").stdout
    queued = json.loads(tasks("tasks", "trigger", "nap", "--json").stdout)
    cancelled = json.loads(tasks("runs", "cancel", str(queued["id"]), "--json").stdout)
    assert cancelled["status"] == "cancelled"
    tasks("runs", "show", "999999", expect=2)


def test_the_console_script_ends_a_foreground_run_with_its_exit_code_its_output_and_no_worker_left(
    tasks, subprocess_env
):
    """As the console script, ``upkeep run`` ends without the interpreter's teardown: the exit code, the
    whole JSON view on a pipe and the stopped worker process must all survive that."""
    import subprocess
    import sys

    def upkeep_run(*args: str) -> tuple[int, dict]:
        proc = subprocess.run(
            [sys.executable, "-c", "from upkeep.cli.main import main; main()", "run", *args, "--json"],
            env=subprocess_env,
            cwd=tasks.root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return proc.returncode, json.loads(proc.stdout)

    code, view = upkeep_run("bad-news")
    assert (code, view["status"], view["outcome"]) == (1, "completed", "critical")
    code, view = upkeep_run("nap", "--set", "seconds=0.1")
    assert (code, view["status"], view["summary"]) == (0, "completed", "slept 0.1s")
    worker_pid = int(view["worker"].rsplit(":", 1)[1])
    assert not psutil.pid_exists(worker_pid) or psutil.Process(worker_pid).status() == psutil.STATUS_ZOMBIE


def test_the_console_script_knows_a_foreground_run_from_its_command_line_alone():
    from upkeep.cli.script import foreground_run

    assert foreground_run(["run", "logs.analyze", "--set", "paths=[x]", "--json"]) == (True, "logs.analyze")
    assert foreground_run(["-c", "run", "run", "--set", "a=b", "--timeout", "3", "nap"]) == (True, "nap")
    assert foreground_run(["--config=x.yaml", "--log-level", "INFO", "run", "--daily"]) == (True, None)
    assert foreground_run(["run", "--tier", "daily"]) == (True, None)
    assert foreground_run(["run", "nap", "--help"]) == (False, None)
    assert foreground_run(["runs", "show", "1"]) == (False, None)
    assert foreground_run(["tasks", "trigger", "run"]) == (False, None)
    assert foreground_run([]) == (False, None)


def test_the_console_script_forks_its_worker_first_and_a_timeout_still_kills_the_whole_tree(tasks, subprocess_env):
    """As the console script, ``upkeep run`` forks its worker before reading its config
    (``upkeep.engine.early``): a timeout kills that worker's process tree as any worker's, and a
    command that makes no run leaves no worker behind."""
    import subprocess
    import sys

    tasks.write(
        TASKS
        + """
  - name: forked-sleeps-early
    type: shell.run
    timeout_seconds: 2
    config:
      command: "sleep 61.7 & sleep 61.7 & wait"
      shell: true
"""
    )
    tasks("apply")

    def script(*args: str, expect: int) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-c", "from upkeep.cli.script import main; main()", "--config", str(tasks.config), *args],
            env=subprocess_env,
            cwd=tasks.root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == expect, proc.stderr
        return proc

    view = json.loads(script("run", "forked-sleeps-early", "--json", expect=1).stdout)
    assert view["status"] == "timed_out"
    left = [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [])[:2] == ["sleep", "61.7"]]
    assert left == []
    shown = json.loads(tasks("runs", "show", str(view["id"]), "--json").stdout)
    assert shown["status"] == "timed_out"
    script("run", "no-such-task", expect=2)
    mine = [p for p in psutil.process_iter(["cmdline"]) if str(tasks.config) in (p.info["cmdline"] or [])]
    assert mine == []


def _api_log(path) -> None:
    """A pino-style request log: 40 requests, 4 of them 5xx and logged as errors."""
    start = 1_764_900_000_000
    lines = []
    for i in range(40):
        failed = i % 10 == 0
        level = '"ERROR"' if failed else '"INFO"'
        status = 503 if failed else 200
        lines.append(
            f'{{"level":{level},"time":{start + i * 1000},"msg":"request completed",'
            f'"req":{{"url":"/items/{i}"}},"res":{{"statusCode":{status}}},"durationMs":{10 + i}}}'
        )
    path.write_text("\n".join(lines) + "\n")


def _console_script(cli, env, *args: str, hook: str = "") -> subprocess.CompletedProcess:
    code = f"import sys\n{hook}\nfrom upkeep.cli.script import main\nsys.argv[0] = 'upkeep'\nmain()\n"
    return subprocess.run(
        [sys.executable, "-c", code, "--config", str(cli.config), *args],
        env=env,
        cwd=cli.root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_worker_of_upkeep_run_analyses_the_log_of_its_command_line_without_sqlalchemy(cli, subprocess_env):
    """``logs.analyze`` is started by the worker forked when the command starts, from its command
    line, before the run exists (``upkeep.engine.speculate``): that worker never imports
    SQLAlchemy, and the run it records is the analysis of the run's own config."""
    cli.write("tasks: []\n")
    log = cli.root / "api.log"
    _api_log(log)
    marks = cli.root / "worker-marks"
    hook = f"""
import os
parent = os.getpid()
def noted(event, args):
    if os.getpid() == parent:
        return
    if event == "open" and args[0] == {str(log)!r}:
        mark = "analysed with sqlalchemy" if "sqlalchemy" in sys.modules else "analysed without sqlalchemy"
    elif event == "import" and args[0].split(".")[0] == "sqlalchemy":
        mark = "imported sqlalchemy"
    else:
        return
    with open({str(marks)!r}, "a") as f:
        f.write(mark + "\\n")
sys.addaudithook(noted)
"""
    args = ("run", "logs.analyze", "--set", f"paths=[{log}]", "--set", "window=all", "--json")
    proc = _console_script(cli, subprocess_env, *args, hook=hook)
    assert proc.returncode == 1, proc.stderr  # 10 % of requests failed: critical
    view = json.loads(proc.stdout)
    assert (view["status"], view["outcome"]) == ("completed", "critical"), view
    figures = view["result"]["targets"]["paths"]
    assert (figures["errors"], figures["requests"]["total"], figures["requests"]["5xx"]) == (4, 40, 4)
    assert set(marks.read_text().splitlines()) == {"analysed without sqlalchemy"}
    events = [e["event"] for e in json.loads(cli("runs", "logs", str(view["id"]), "--json").stdout)]
    assert events[0] == "started" and "scope" in events and events[-1] == "finished"


def test_a_run_refused_before_it_exists_discards_what_its_worker_started(cli, subprocess_env, tmp_path):
    """The worker started the analysis from the command line; the command then refuses the run
    (exit 2): no run is recorded, and neither the worker nor its temporary files are left."""
    cli.write("tasks: []\n")
    log = cli.root / "api.log"
    _api_log(log)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**subprocess_env, "TMPDIR": str(scratch)}
    proc = _console_script(cli, env, "run", "logs.analyze", "--set", f"paths=[{log}]", "--timeout", "-1")
    assert proc.returncode == 2, proc.stderr
    assert json.loads(cli("runs", "list", "--json").stdout)["runs"] == []
    mine = [p for p in psutil.process_iter(["cmdline"]) if str(cli.config) in (p.info["cmdline"] or [])]
    assert mine == []
    assert list(scratch.iterdir()) == []


def test_a_run_of_the_inventorys_logs_is_analysed_by_the_worker_as_any_run(cli, subprocess_env):
    """Without paths on its command line, ``logs.analyze`` reads the inventory, which only a run has:
    nothing is started from the command line, and the run executes as any."""
    log = cli.root / "api.log"
    _api_log(log)
    cli.write(f"targets:\n  logs:\n    api: {{paths: [{str(log)!r}]}}\ntasks: []\n")
    cli("apply")
    proc = _console_script(cli, subprocess_env, "run", "logs.analyze", "--set", "window=all", "--json")
    assert proc.returncode == 1, proc.stderr
    view = json.loads(proc.stdout)
    assert (view["status"], view["outcome"]) == ("completed", "critical"), view
    assert view["result"]["targets"]["api"]["requests"]["5xx"] == 4
    events = [e["event"] for e in json.loads(cli("runs", "logs", str(view["id"]), "--json").stdout)]
    assert events.count("scope") == 1

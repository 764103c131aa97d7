"""Start-up and footprint (issue 18), each beside a baseline measured in the same run, upkeep with
its default settings and its modules byte-compiled as an installed copy's are.

1. CLI start, wall and CPU, median of UPKEEP_BENCH_STARTS (15) interleaved rounds: ``python -c
   pass``; ``python -c "import sqlalchemy, pydantic, typer"``; ``upkeep --help``; ``upkeep tasks
   list`` in a directory made by ``upkeep init`` (what cron users and scripts pay).
2. ``upkeep serve`` idle for UPKEEP_BENCH_IDLE_SECONDS (60) after ``upkeep init``, in a spell with
   no slot (the default config's five-minute health check, and its worker, come before or after
   it: ``_quiet_spell``): the PSS of its whole process tree, beside an APScheduler 3.11
   BackgroundScheduler with a SQLite job store and 5 jobs idle as long (both run at the same time).
3. The first run after that idle spell: a task made with ``upkeep tasks create --schedule "@once
   <25 s after the spell>"`` as ``serve`` starts idling; how long after its slot its run started.
4. The PSS again after a run of the health check and its worker's retirement: the daemon
   between two runs.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from benchmarks._goals import check
from benchmarks._host import IMPORT_LINE
from benchmarks._installed import compile_upkeep
from upkeep.engine.pool import WARM_AHEAD_SECONDS
from upkeep.settings import Settings

STARTS = int(os.environ.get("UPKEEP_BENCH_STARTS", "15"))
IDLE = float(os.environ.get("UPKEEP_BENCH_IDLE_SECONDS", "60"))
WORKER_IDLE_SECONDS = Settings.model_fields["worker_idle_seconds"].default
HEALTH_CHECK_SECONDS = 300  # `upkeep init`'s upkeep-health task: "*/5 * * * *"
UPKEEP = str(Path(sys.executable).with_name("upkeep"))

APSCHEDULER_IDLE = """
import sys, time, psutil
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

def noop():
    pass

sched = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{sys.argv[1]}/aps.db")},
                            timezone="UTC")
sched.start()
for i in range(5):
    sched.add_job(noop, "interval", hours=1, id=f"job{i}", replace_existing=True)
time.sleep(float(sys.argv[2]))
print(psutil.Process().memory_full_info().pss)
sched.shutdown()
"""


def _env(workdir: Path) -> dict[str, str]:
    """Default settings: no UPKEEP_* from the caller; the config in ``workdir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPKEEP_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed copy's modules are compiled
    env["UPKEEP_CONFIG"] = str(workdir / "upkeep.yaml")
    return env


def _time(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``cmd``."""
    before = os.times()
    started = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - started
    after = os.times()
    return wall, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def cli_start(workdir: Path) -> None:
    env = _env(workdir)
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import sqlalchemy, pydantic, typer": IMPORT_LINE,
        "upkeep --help": [UPKEEP, "--help"],
        "upkeep tasks list": [UPKEEP, "tasks", "list"],
    }
    for cmd in commands.values():  # warm the page cache
        _time(cmd, env, workdir)
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(STARTS):
        for name, cmd in commands.items():
            wall, cpu = _time(cmd, env, workdir)
            walls[name].append(wall)
            cpus[name].append(cpu)
    print(f"CLI start, median of {STARTS} interleaved rounds (wall / CPU):")
    base = statistics.median(walls["import sqlalchemy, pydantic, typer"])
    for name in commands:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        print(f"  {name:36} {wall:6.3f} s / {cpu:6.3f} s   {wall / base:5.2f}x the libraries' import")
    goals = {"upkeep --help": 0.15, "upkeep tasks list": 0.35}
    for name, goal in goals.items():
        wall = statistics.median(walls[name])
        verdict = check(f"{name} (wall, median)", f"{wall:.3f} s", f"<= {goal} s", wall <= goal)
        print(f"  {name}: {wall:.3f} s, goal <= {goal} s: {verdict}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree_pss(pid: int) -> tuple[float, int]:
    pss, processes, _ = _tree(pid)
    return pss, processes


def _tree(pid: int) -> tuple[float, int, list[str]]:
    """The PSS in MB of ``pid`` and every process under it, how many they are, and each child's age
    and command line, from one look at the tree."""
    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    total = 0
    children = []
    for proc in procs:
        try:
            total += proc.memory_full_info().pss
            if proc is not root:
                age, cmdline = time.time() - proc.create_time(), " ".join(proc.cmdline())[:120]
                children.append(f"pid {proc.pid}, {age:.1f} s old: {cmdline}")
        except psutil.Error:
            pass
    return total / 2**20, len(procs), children


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"upkeep serve exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError("upkeep serve did not listen")


def stop_daemon(proc: subprocess.Popen) -> None:
    """Stop ``upkeep serve`` as its service manager would (SIGTERM), killing it if it hangs."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _run_row(workdir: Path, task: str, origin: str, columns: str, reached: str) -> tuple | None:
    """``columns`` of the run of ``task`` (from ``origin``) once its ``reached`` column is set,
    polled for 90 s; None if it never is."""
    db = workdir / ".upkeep" / "upkeep.db"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            row = conn.execute(
                f"SELECT {columns} FROM runs r JOIN scheduled_tasks t ON t.id = r.task_id "
                f"WHERE t.name = ? AND r.origin = ? AND r.{reached} IS NOT NULL",
                (task, origin),
            ).fetchone()
        if row:
            return row
        time.sleep(0.2)
    return None


def _first_run_latency(workdir: Path) -> float | None:
    """Seconds from the slot of the task ``first-after-idle`` to the start of its run."""
    row = _run_row(workdir, "first-after-idle", "scheduled", "r.scheduled_for, r.started_at", "started_at")
    if row is None:
        return None
    scheduled, started = (datetime.fromisoformat(v).replace(tzinfo=UTC) for v in row)
    return (started - scheduled).total_seconds()


def _quiet_spell(workdir: Path, serve: subprocess.Popen, length: float) -> list[str]:
    """Wait until serve holds no child process and no enabled task's slot comes within ``length``
    seconds and the pool's warm-up lead: `upkeep init`'s config checks upkeep's health every five
    minutes, and the pool keeps the worker of such a run ``worker_idle_seconds`` after it, so
    a spell drawn at random would measure that worker in one case out of six. A spell longer than
    the health check's period (UPKEEP_BENCH_IDLE_SECONDS=600: the issue's ten minutes before the
    first run) cannot be waited for: the tasks whose slots come in it are disabled instead. What
    was waited for or done."""
    db = workdir / ".upkeep" / "upkeep.db"
    waited = []
    children_deadline = time.monotonic() + 120  # then measured as they are, and listed
    spell = length + WARM_AHEAD_SECONDS + 5
    while True:
        with sqlite3.connect(db) as conn:
            row = conn.execute(
                "SELECT name, next_run_at FROM scheduled_tasks WHERE enabled AND next_run_at IS NOT NULL "
                "ORDER BY next_run_at LIMIT 1"
            ).fetchone()
        now = datetime.now(UTC)
        slot = datetime.fromisoformat(row[1]).replace(tzinfo=UTC) if row else None
        in_spell = slot is not None and (slot - now).total_seconds() < spell
        if in_spell and spell >= HEALTH_CHECK_SECONDS:
            disable = [UPKEEP, "tasks", "disable", row[0]]
            subprocess.run(disable, env=_env(workdir), cwd=workdir, check=True, stdout=subprocess.DEVNULL)
            waited.append(f"disabling {row[0]}, whose slot at {slot:%H:%M:%S} UTC came in the spell")
        elif in_spell:
            waited.append(f"the slot of {row[0]} at {slot:%H:%M:%S} UTC and its worker's idle spell")
            time.sleep((slot - now).total_seconds() + WORKER_IDLE_SECONDS + 10)
        elif _tree(serve.pid)[1] > 1 and time.monotonic() < children_deadline:
            if "serve's children to exit" not in waited:
                waited.append("serve's children to exit")
            time.sleep(5)
        else:
            return waited


def idle_daemon(workdir: Path) -> None:
    env = _env(workdir)
    port = _free_port()
    log = open(workdir / "serve.log", "w")  # noqa: SIM115 - closed below
    serve = subprocess.Popen([UPKEEP, "serve", "--port", str(port)], env=env, cwd=workdir, stdout=log, stderr=log)
    aps = None
    try:
        _wait_listening(port, serve)
        waited = _quiet_spell(workdir, serve, IDLE + 25)
        aps = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(APSCHEDULER_IDLE), str(workdir), str(IDLE)],
            stdout=subprocess.PIPE,
            text=True,
        )
        began = time.monotonic()
        # the task whose run ends the idle spell: its one slot comes after the measurement, further
        # than the pool's warm-up lead (workers start WARM_AHEAD_SECONDS before a slot), so the
        # daemon measured is idle, not starting workers for a run due in a moment
        slot = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=IDLE + 25)
        subprocess.run(
            [
                UPKEEP,
                "tasks",
                "create",
                "first-after-idle",
                "--type",
                "debug.noop",
                "--schedule",
                f"@once {slot.isoformat()}",
            ],
            env=env,
            cwd=workdir,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        time.sleep(max(0.0, IDLE - (time.monotonic() - began)))
        pss, processes, held = _tree(serve.pid)
        aps_out, _ = aps.communicate(timeout=IDLE + 60)
        aps_pss = int(aps_out.strip().splitlines()[-1]) / 2**20
        print(f"upkeep serve idle {IDLE:.0f} s after `upkeep init`, default settings:")
        for what in waited:
            print(f"  (the spell began after {what})")
        print(f"  upkeep serve   {pss:6.1f} MB PSS over {processes} process(es)")
        print(f"  APScheduler    {aps_pss:6.1f} MB PSS (BackgroundScheduler, SQLite job store, 5 jobs)")
        verdict = check("upkeep serve idle, PSS of all processes", f"{pss:.1f} MB", "<= 100 MB", pss <= 100)
        print(f"  ratio {pss / aps_pss:.1f}x; goal <= 100 MB: {verdict}")
        for line in held:  # an idle pool holds none: what it held, for whoever looks into why
            print(f"  still running: {line}")
        latency = _first_run_latency(workdir)
        what, goal = "first run after the idle spell, from its slot", "<= 200 ms"
        if latency is None:
            check(what, "no start in 90 s", goal, False)
            print("  first run after the idle spell: did not start within 90 s")
        else:
            verdict = check(what, f"{latency * 1000:.0f} ms", goal, latency <= 0.2)
            print(f"  first run after the idle spell: started {latency * 1000:.0f} ms after its slot", end="")
            print(f" (goal <= 200 ms: {verdict})")
        after_run(workdir, serve)
    finally:
        stop_daemon(serve)
        log.close()
        if aps is not None and aps.poll() is None:
            aps.kill()


def after_run(workdir: Path, serve: subprocess.Popen) -> None:
    """The idle daemon again after a run of `upkeep init`'s health check (triggered now), once its
    worker has retired: what a daemon with the default config holds between two runs (the
    modules a run imports stay)."""
    trigger = [UPKEEP, "tasks", "trigger", "upkeep-health"]
    subprocess.run(trigger, env=_env(workdir), cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    ended = _run_row(workdir, "upkeep-health", "manual", "r.status", "finished_at")
    if ended is None:
        check("upkeep serve idle after a run, PSS of all processes", "no run in 90 s", "<= 100 MB", False)
        print("  idle again after a run of upkeep-health: it did not finish within 90 s")
        return
    # its worker retired, and no slot's worker starting (the health check's next slot may be near)
    waited = _quiet_spell(workdir, serve, 10)
    pss, processes, held = _tree(serve.pid)
    verdict = check("upkeep serve idle after a run, PSS of all processes", f"{pss:.1f} MB", "<= 100 MB", pss <= 100)
    print(
        f"  idle again after a run of upkeep-health ({ended[0]}): "
        f"{pss:.1f} MB PSS over {processes} process(es) (goal <= 100 MB: {verdict})"
    )
    for what in waited:
        print(f"  (measured after {what})")
    for line in held:
        print(f"  still running: {line}")


def main() -> None:
    print(compile_upkeep())
    with tempfile.TemporaryDirectory(prefix="upkeep-bench-startup-") as tmp:
        workdir = Path(tmp)
        subprocess.run([UPKEEP, "init"], env=_env(workdir), cwd=workdir, check=True, stdout=subprocess.DEVNULL)
        cli_start(workdir)
        idle_daemon(workdir)


if __name__ == "__main__":
    main()

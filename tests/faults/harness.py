"""A deployment under test: real upkeep processes (``serve``, or ``scheduler`` + Celery ``worker``),
a store that the test breaks, and a task whose handler appends one line per step of each real
execution to a file, so the test counts what really ran and compares it with what was recorded."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import psutil
import sqlalchemy as sa

from support.processes import UpkeepProcesses
from support.servers import free_port
from upkeep.store.db import Store
from upkeep.store.models import ACTIVE_STATUSES, Run, RunEvent

# one invocation: "start PID", then after SLEEP seconds "ending PID", half a second later "end PID";
# a failing task exits 3 after its "end" line
HANDLER = """#!/bin/sh
echo "start $$" >> "$1"
sleep "$2"
echo "ending $$" >> "$1"
sleep 0.5
echo "end $$" >> "$1"
exit "${3:-0}"
"""

# a beat every 0.5 s, a run stale after 4 missed beats (2 s): cases take seconds, and a loaded
# machine's late beat is still no reason to judge a run lost
FAST_ENV = {
    "UPKEEP_HEARTBEAT_SECONDS": "0.5",
    "UPKEEP_STALE_AFTER_MISSED_HEARTBEATS": "4",
    "UPKEEP_REQUEUE_SUBMITTED_AFTER_SECONDS": "5",
    "UPKEEP_SCHEDULER_MAX_SLEEP_SECONDS": "1",
}


EVERY = 2.0  # seconds between two slots of each task


class Deployment(UpkeepProcesses):
    """upkeep processes sharing one store; ``executor`` is ``embedded`` (``upkeep serve``) or ``celery``."""

    def __init__(self, tmp_path: Path, database_url: str, *, executor: str = "embedded", broker_url: str | None = None):
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.executor = executor
        self.invocations = tmp_path / "invocations.log"
        self.invocations.touch()
        self.script = tmp_path / "handler.sh"
        self.script.write_text(HANDLER)
        self.config = tmp_path / "upkeep.yaml"
        self.data_dir = tmp_path / "data"
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(sys.path),
            "UPKEEP_CONFIG": str(self.config),
            "UPKEEP_DATA_DIR": str(self.data_dir),
            "UPKEEP_DATABASE_URL": database_url,
            "UPKEEP_EXECUTOR": executor,
            **FAST_ENV,
        }
        if broker_url:
            self.env["UPKEEP_BROKER_URL"] = broker_url
        self.store = Store(database_url)
        super().__init__()

    # --- set-up ------------------------------------------------------------------------------

    def write_tasks(
        self, *, every: float = EVERY, sleep: float = 1.0, max_retries: int = 1, failing: bool = True
    ) -> None:
        """``work`` succeeds every ``every`` seconds; ``broken`` (when ``failing``) exits 3 at the same pace."""
        lines = ["tasks:"]
        for name, code in [("work", 0), *([("broken", 3)] if failing else [])]:
            command = f"[/bin/sh, {self.script}, {self.invocations}.{name}, '{sleep:g}', '{code}']"
            lines += [
                f"  - name: {name}",
                "    type: shell.run",
                f'    schedule: "@every {every:g}s"',
                "    misfire: run_all",
                "    misfire_grace_seconds: 3600",
                f"    max_retries: {max_retries}",
                "    retry_backoff_seconds: 1",
                f"    config: {{command: {command}}}",
            ]
        self.config.write_text("\n".join(lines) + "\n")

    def upkeep(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "upkeep.cli.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )

    def start_all(self) -> None:
        """The whole deployment: ``serve`` alone, or a scheduler and a Celery worker."""
        if self.executor == "embedded":
            self.start("serve", "serve", "--port", str(free_port()))
        else:
            self.start("worker", "worker", "--concurrency", "2")
            self.start("scheduler", "scheduler")

    def kill(self, name: str) -> None:
        """SIGKILL a process and every process under it (its workers run in sessions of their own,
        and so do the handlers' commands), as a crash of the host would."""
        proc = self.procs.pop(name)
        try:
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for p in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name)  # how they stop is not under test here: quickly
        self.store.dispose()

    # --- observing ---------------------------------------------------------------------------

    def lines(self, task: str = "work") -> list[str]:
        path = Path(f"{self.invocations}.{task}")
        return path.read_text().splitlines() if path.exists() else []

    def count(self, word: str, task: str = "work") -> int:
        return sum(1 for line in self.lines(task) if line.split()[0] == word)

    def runs(self) -> list[Run]:
        with self.store.read() as s:
            return list(s.execute(sa.select(Run).order_by(Run.id)).scalars())

    def events(self, run_id: int) -> list[RunEvent]:
        with self.store.read() as s:
            return list(
                s.execute(sa.select(RunEvent).where(RunEvent.run_id == run_id).order_by(RunEvent.seq)).scalars()
            )

    def wait_until(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            exited = [name for name, proc in self.procs.items() if proc.poll() is not None]
            assert not exited, f"{exited} exited while waiting for {what}\n{self.diagnostics()}"
            try:
                if predicate():
                    return
            except sa.exc.OperationalError:
                pass  # the store is down on purpose
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.diagnostics()}")

    def wait_for_line(self, word: str, after: int = 0, timeout: float = 60, task: str = "work") -> None:
        """Until the ``after + 1``-th line starting with ``word`` appears."""
        self.wait_until(lambda: self.count(word, task) > after, timeout, f"{word} line #{after + 1} of {task}")

    def disable(self) -> None:
        """No new slots from now on; what is due already still runs."""
        text = self.config.read_text().replace('    schedule: "@every', '    enabled: false\n    schedule: "@every')
        self.config.write_text(text)
        for attempt in range(3):  # the test's own step, not under test: a busy store may refuse it once
            try:
                self.upkeep("apply")
                return
            except subprocess.CalledProcessError as exc:
                if attempt == 2:
                    raise AssertionError(f"upkeep apply failed:\n{exc.stdout}\n{exc.stderr}") from exc
                time.sleep(1)

    def drain(self, timeout: float = 120) -> None:
        def quiet() -> bool:
            return not [r for r in self.runs() if r.status in ACTIVE_STATUSES]

        self.wait_until(quiet, timeout, "every run to end")

    def diagnostics(self) -> str:
        out = []
        try:
            for r in self.runs()[-30:]:
                out.append(f"run {r.id} {r.task_name} {r.origin} slot {r.scheduled_for} {r.status} {r.error or ''}")
                if r.status == "failed" and (r.error or "").startswith("worker "):
                    out += [f"    {e.ts:%H:%M:%S.%f} {e.event}: {e.message}" for e in self.events(r.id)]
        except Exception as exc:  # the store may be the thing that is broken
            out.append(f"(runs unreadable: {exc})")
        for task in ("work", "broken"):
            out.append(f"{task} invocations: {Counter(line.split()[0] for line in self.lines(task))}")
        for log in sorted(self.tmp_path.glob("*.log")):
            if log.name.startswith("invocations"):
                continue
            out.append(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        return "\n".join(out)

    # --- the invariants ----------------------------------------------------------------------

    def assert_invariants(self, *, every: float = EVERY, crashed: bool = False) -> dict[str, int]:
        """Every run terminal; each real execution recorded once with its real outcome; no run
        executed twice; no slot missing. With ``crashed`` (the deployment was killed), executions
        killed with it (started, never ended) are recorded as lost, one run each, and retried."""
        runs_, d = self.runs(), self.diagnostics
        assert not [r for r in runs_ if r.status in ACTIVE_STATUSES], d()
        summary: dict[str, int] = {}
        for task, real in [("work", "completed"), ("broken", "exited with 3")]:
            mine = [r for r in runs_ if r.task_name == task]
            if not mine:
                continue
            starts, ends = self.count("start", task), self.count("end", task)
            recorded = [r for r in mine if r.status == real or real in (r.error or "")]
            lost = [r for r in mine if (r.error or "").startswith("worker ")]
            if not crashed:
                # every execution ran to its end and is one run with the handler's real outcome
                assert starts == ends, f"{task}: {starts} started, {ends} ended\n{d()}"
                assert len(recorded) == ends, f"{task}: {ends} executions ended, {len(recorded)} recorded\n{d()}"
                assert not lost, f"{task}: judged lost: {[(r.id, r.error) for r in lost]}\n{d()}"
            started = [r for r in mine if r.started_at is not None]
            if crashed:
                # each started run ended with its real outcome, or as lost when the crash took its
                # worker before it had the result (at most the one in flight per task, which may
                # not have reached its handler yet)
                assert len(recorded) + len(lost) == len(started), f"{task}: started runs\n{d()}"
                assert len(recorded) <= ends and len(lost) <= 1, f"{task}: lost {len(lost)}\n{d()}"
                assert len(started) - len(lost) <= starts <= len(started), f"{task}: executions\n{d()}"
            else:
                # no run executed twice: one execution per run that started, retries included
                assert len(started) == starts, f"{task}: {starts} executions for {len(started)} started runs\n{d()}"
            # a retry for each failure with attempts left, and none else
            retries = [r for r in mine if r.origin == "retry"]
            failures = [r for r in mine if r.status == "failed" and r.attempt <= r.max_retries]
            assert len(retries) == len(failures), f"{task}: {len(retries)} retries for {len(failures)} failures"
            # no slot missing, none twice
            slots = sorted(r.scheduled_for for r in mine if r.origin == "scheduled")
            assert len(slots) == len(set(slots)), f"{task}: a slot has two runs"
            steps = {b - a for a, b in zip(slots, slots[1:], strict=False)}
            assert steps <= {timedelta(seconds=every)}, f"{task}: slots missing (steps {sorted(steps)})"
            summary[f"{task}_executions"] = starts
            summary[f"{task}_slots"] = len(slots)
        return summary

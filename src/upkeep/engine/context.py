"""``RunContext``: everything a handler may use, and nothing more.

A handler never imports SQLAlchemy, the API or the CLI. It logs structured events, reports
progress, checks for cancellation and its deadline, runs subprocesses under that deadline, reads
the targets inventory and keeps small records between runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from upkeep import secrets as secret_refs
from upkeep.clock import Clock
from upkeep.engine.targets import handler_entry
from upkeep.errors import UserError

if TYPE_CHECKING:
    import psutil

    from upkeep.engine.registry import Registry
    from upkeep.settings import Settings
    from upkeep.store.db import Store

LEVELS = ("debug", "info", "warning", "error")


class RunCancelled(Exception):
    """Raised by ``ctx.check_cancelled()`` once a cancel was requested."""


class WaitRequested(Exception):
    """Raised by a handler to give its worker back and wait (an approval step): the run becomes
    ``waiting`` until resumed, and is then executed again (the handler picks up where it was)."""

    def __init__(self, reason: str, result: dict | None = None):
        super().__init__(reason)
        self.reason = reason
        self.result = result


class DeadlineExceeded(Exception):
    """The run's deadline has passed (the executor kills the process soon after anyway)."""


class CommandFailed(Exception):
    """A subprocess exited non-zero (``check=True``) or could not be started."""

    def __init__(self, message: str, result: CommandResult | None = None):
        super().__init__(message)
        self.result = result


@dataclass
class CommandResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration: float

    def tail(self, lines: int = 20) -> str:
        text = (self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr).rstrip()
        return "\n".join(text.splitlines()[-lines:])


class Journal(Protocol):
    """Where a context writes: the store in production, the same store in tests."""

    def event(self, run_id: int, level: str, event: str, message: str, data: dict | None) -> None: ...
    def progress(self, run_id: int, fraction: float | None, message: str | None) -> None: ...
    def heartbeat(self, run_id: int) -> None: ...
    def cancel_requested(self, run_id: int) -> bool: ...


class Services(Protocol):
    """What a handler may ask of upkeep beyond its own run (``ctx.services``), and nothing more: never
    the store. ``upkeep.app.run_services.RunServices`` implements it; whoever starts an executor
    hands it a ``ServicesFactory`` (the engine cannot name the layers above it). None where a run
    executes without them (a handler test's bare context): the handlers that need them say so."""

    @property
    def database_url(self) -> str: ...
    @property
    def config_file(self) -> str | None: ...  # the upkeep.yaml this instance reads, if any

    # runs.reap, runs.cleanup, health.report, capacity, performance review
    def reap(self, *, dry_run: bool) -> dict[str, Any]: ...
    def cleanup_expired(
        self, *, retention_days: int, batch_size: int, dry_run: bool, now: datetime | None = None
    ) -> dict[str, Any]: ...
    def health_summary(self, now: datetime | None = None, *, window_hours: int = 24) -> dict[str, Any]: ...
    def run_history(self, *, since: datetime, until: datetime | None = None) -> list[dict[str, Any]]: ...

    # config.audit, security.audit, report.send
    def api_keys(self) -> list[dict[str, Any]]: ...
    def validate_config_file(self, path: str) -> list[dict[str, Any]]: ...
    def send_to_channel(self, name: str, title: str, body: str, notify_type: str = "info") -> None: ...
    def digest(self, period: str, now: datetime) -> dict[str, Any]: ...
    def render_digest(self, digest: dict[str, Any], form: str) -> str: ...

    # procedure.execute's approval steps, checklist.run
    def approvals_of(self, run_id: int) -> dict[int, dict[str, Any]]: ...
    def request_approval(self, *, channels: list[str] | None, **fields: Any) -> tuple[dict[str, Any], list[str]]: ...
    def task_title(self, name: str | None) -> str | None: ...
    def open_checklist(self, **fields: Any) -> dict[str, Any]: ...
    def preview_checklist(self, items: list, now: datetime) -> list[dict[str, Any] | None]: ...


# (store, settings, registry) -> the services of the runs executed with them
ServicesFactory = Callable[["Store", "Settings", "Registry"], Services]


class Inventory:
    """The targets from ``upkeep.yaml`` (``targets: {kind: {name: {...}}}``), secrets resolved on read."""

    def __init__(
        self,
        targets: Mapping[str, Mapping[str, Any]] | None = None,
        secrets: list[str] | None = None,
        *,
        loader: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None,
    ):
        """``loader`` reads the targets on first use: most handlers never look at them."""
        self._loaded = None if loader else self._normalise(targets)
        self._loader = loader
        self._secrets = secrets if secrets is not None else []

    @staticmethod
    def _normalise(targets: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
        return {k: dict(v or {}) for k, v in (targets or {}).items()}

    @property
    def _targets(self) -> dict[str, dict[str, Any]]:
        if self._loaded is None:
            self._loaded = self._normalise(self._loader() if self._loader else None)
        return self._loaded

    @property
    def raw(self) -> dict[str, dict[str, Any]]:
        return self._targets

    def kinds(self) -> list[str]:
        return sorted(self._targets)

    def names(self, kind: str) -> list[str]:
        return sorted(self._targets.get(kind, {}))

    def kind(self, kind: str) -> dict[str, Any]:
        """All targets of one kind, e.g. ``ctx.targets.kind("services")``."""
        return {name: self.get(kind, name) for name in self.names(kind)}

    def get(self, kind: str, name: str) -> Any:
        try:
            value = self._targets[kind][name]
        except KeyError:
            known = ", ".join(self.names(kind)) or "none defined"
            raise UserError(
                f"unknown {kind} target {name!r}",
                hint=f"define it under targets.{kind} in upkeep.yaml (known: {known})",
            ) from None
        return secret_refs.resolve(handler_entry(value), collected=self._secrets)


@dataclass
class RunContext:
    run_id: int
    task_type: str
    journal: Journal
    records_factory: Any  # Callable[[str], Records]
    task_name: str | None = None
    attempt: int = 1
    dry_run: bool = False
    confirm: bool = False
    deadline: datetime | None = None
    targets: Inventory = field(default_factory=Inventory)
    clock: Clock = field(default_factory=Clock)
    data_dir: Path = field(default_factory=lambda: Path(".upkeep"))
    services: Services | None = None  # what a handler may ask beyond its run (``Services``)
    secrets: list[str] = field(default_factory=list)
    cancel_event: threading.Event = field(default_factory=threading.Event)
    requested_type: str | None = None

    # --- events and progress ----------------------------------------------------------------

    def log(self, level: str, event: str, message: str = "", **data: Any) -> None:
        level = level.lower()
        if level not in LEVELS:
            raise ValueError(f"log level {level!r} is not one of {LEVELS}")
        message = secret_refs.scrub(str(message), self.secrets)
        clean = _scrub_data(data, self.secrets) if data else None
        self.journal.event(self.run_id, level, event, message, clean)

    def debug(self, event: str, message: str = "", **data: Any) -> None:
        self.log("debug", event, message, **data)

    def info(self, event: str, message: str = "", **data: Any) -> None:
        self.log("info", event, message, **data)

    def warning(self, event: str, message: str = "", **data: Any) -> None:
        self.log("warning", event, message, **data)

    def error(self, event: str, message: str = "", **data: Any) -> None:
        self.log("error", event, message, **data)

    def scope(self, chosen: list[Any], why: str, *, what: str) -> None:
        """Say what the run will act on and why, before it acts (event ``scope``): a task touches
        what it names and says so, e.g. ``ctx.scope(["app"], "the database target main names",
        what="VACUUM databases")``."""
        shown = ", ".join(str(c) for c in chosen[:20]) or "nothing"
        if len(chosen) > 20:
            shown += f" and {len(chosen) - 20} more"
        self.info(
            "scope",
            f"{what}: {shown} ({why})",
            what=what,
            chosen=[str(c) for c in chosen[:500]],
            count=len(chosen),
            reason=why,
        )

    def progress(self, fraction: float | None, message: str | None = None) -> None:
        if fraction is not None:
            fraction = max(0.0, min(1.0, float(fraction)))
        self.journal.progress(self.run_id, fraction, message)

    def heartbeat(self) -> None:
        self.journal.heartbeat(self.run_id)

    # --- time, cancellation -----------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def remaining(self) -> float | None:
        """Seconds until the deadline (never negative), or None without a timeout."""
        if self.deadline is None:
            return None
        return max(0.0, (self.deadline - self.clock.now()).total_seconds())

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check_cancelled(self) -> None:
        """Raise ``RunCancelled`` after a cancel request, ``DeadlineExceeded`` past the deadline.

        Cheap enough for a loop: the executor watches the store for cancel requests and sets an event.
        """
        if self.cancel_event.is_set():
            raise RunCancelled("cancel requested")
        if self.deadline is not None and self.clock.now() >= self.deadline:
            raise DeadlineExceeded("the run's deadline has passed")

    # --- records and subprocesses -----------------------------------------------------------

    def records(self, domain: str):
        """Persistent keyed JSON records for ``domain`` (see ``upkeep.store.records.Records``)."""
        return self.records_factory(domain)

    def run_command(
        self,
        argv: Sequence[str] | str,
        *,
        timeout: float | None = None,
        cwd: str | os.PathLike | None = None,
        env: Mapping[str, str] | None = None,
        input: str | bytes | None = None,
        check: bool = True,
        shell: bool = False,
        user: str | None = None,
        text: bool = True,
        stdout_path: str | os.PathLike | None = None,
    ) -> CommandResult:
        """Run a command under the run's deadline; on timeout its whole process tree is killed.

        ``argv`` is a list; a string is only accepted with ``shell=True``. ``env`` adds to the
        environment. With ``stdout_path`` the output goes to that file instead of memory.
        """
        if isinstance(argv, str) and not shell:
            raise ValueError("pass argv as a list, or shell=True for a shell string")
        args = [argv] if isinstance(argv, str) else [str(a) for a in argv]
        limit = _min_opt(timeout, self.remaining())
        full_env = {**os.environ, **(env or {})} if env else None
        stdout_handle = open(stdout_path, "wb") if stdout_path else subprocess.PIPE  # noqa: SIM115
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                args[0] if shell else args,
                shell=shell,
                cwd=cwd,
                env=full_env,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=stdout_handle,
                stderr=subprocess.PIPE,
                user=user,
            )
        except (FileNotFoundError, PermissionError) as exc:
            if stdout_path:
                stdout_handle.close()
            raise CommandFailed(f"cannot run {args[0]}: {exc.strerror or exc}") from None
        try:
            data = input.encode() if isinstance(input, str) else input
            try:
                out, err = proc.communicate(data, timeout=limit)
            except subprocess.TimeoutExpired:
                kill_tree(proc.pid)
                proc.communicate()
                if timeout is not None and (self.remaining() is None or timeout <= (self.remaining() or 0)):
                    raise CommandFailed(f"{_show(args)} timed out after {timeout:g}s") from None
                raise DeadlineExceeded(f"{_show(args)} was killed at the run's deadline") from None
        finally:
            if stdout_path:
                stdout_handle.close()
        result = CommandResult(
            argv=args,
            returncode=proc.returncode,
            stdout=_decode(out) if text else (out or b""),
            stderr=_decode(err) if text else (err or b""),
            duration=time.monotonic() - started,
        )
        if check and proc.returncode != 0:
            detail = secret_refs.scrub(result.tail(5), self.secrets)
            raise CommandFailed(f"{_show(args)} exited with {proc.returncode}: {detail}", result)
        return result


def _decode(value: bytes | None) -> str:
    return value.decode("utf-8", errors="replace") if value else ""


def _show(args: list[str]) -> str:
    text = " ".join(args)
    return text if len(text) <= 120 else text[:117] + "..."


def _min_opt(a: float | None, b: float | None) -> float | None:
    values = [v for v in (a, b) if v is not None]
    return min(values) if values else None


def _scrub_data(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return secret_refs.scrub(value, secrets)
    if isinstance(value, Mapping):
        return {str(k): _scrub_data(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_data(v, secrets) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Path):
        return str(value)
    return value


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> int:
    """Kill a process and all its descendants. Returns how many processes were signalled."""
    import psutil  # here: a handler's import of this module starts ``upkeep run``'s worker

    try:
        parent = psutil.Process(pid)
        procs = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return 0
    count = 0
    for p in procs:
        try:
            p.send_signal(sig)
            count += 1
        except psutil.NoSuchProcess:
            pass
    _wait_dead(procs, timeout=2.0)
    return count


def _wait_dead(procs: list[psutil.Process], timeout: float) -> None:
    """Wait until every process has exited. A zombie has: it only waits for its parent to reap it
    (``psutil.wait_procs`` counts zombies as alive and would wait out the whole timeout)."""
    import psutil

    def dead(p: psutil.Process) -> bool:
        try:
            return p.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    deadline = time.monotonic() + timeout
    while not all(dead(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.005)


def process_alive(pid: int | None, started_before: datetime | None = None) -> bool:
    """Whether ``pid`` is alive and (when given) was started before ``started_before``."""
    if not pid:
        return False
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if started_before is not None:
            return datetime.fromtimestamp(proc.create_time(), UTC) <= started_before + timedelta(seconds=1)
        return True
    except psutil.NoSuchProcess:
        return False


def kill_process_group(pgid: int, sig: int = signal.SIGKILL) -> int:
    """Kill every process still in group ``pgid`` (and their descendants). Returns the count.

    Never the caller's own group, nor group 0 or 1: a run recorded with such a group (a worker
    whose ``setsid`` failed) is not worth taking the recovering process down with it.
    """
    if pgid <= 1 or pgid == os.getpgid(0):
        return 0
    import psutil

    members = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pgid:
                members.append(p)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    count = 0
    for p in members:
        count += kill_tree(p.pid, sig)
    return count

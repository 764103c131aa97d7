"""A read-only handler started before its run exists: ``upkeep run``'s worker, from the command line.

``upkeep run logs.analyze --set paths=[...]`` forks its worker as soon as it has imported the
handler (``engine.early``), and that worker starts the handler at once with the config of the
command line, while the command imports the rest, reads ``upkeep.yaml``, creates the run and claims
it. The command then sends the claimed run; its result is the speculation's only if the run's
resolved config (and its dry-run, confirm and requested name) equals the one the speculation
started from, and the run is a handler type's, not a task's. Otherwise the speculation is thrown
away and the run executes as any (``engine.worker.serve``).

Only handlers that opt in (``HandlerSpec.speculative``) and only the local CLI's command line start
one: the command line is trusted (its user owns ``upkeep.yaml``), and the run's own validation still
decides whether the run exists. A speculation writes nothing: its events are kept in memory and
recorded with the result, after the run was claimed, stamped no earlier than its start. A handler
that asks for what only a run has (targets, records, services) ends the speculation
(``NotSpeculable``) and the run executes as any.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from upkeep import secrets as secret_refs
from upkeep.engine.context import Inventory, RunContext, _scrub_data
from upkeep.engine.handling import ending_of, invoke, resolve_config
from upkeep.engine.registry import REGISTRY, HandlerSpec, Registry


class NotSpeculable(Exception):
    """The handler asked for what only a run has: the speculation is not used."""


class MemoryJournal:
    """A run journal that keeps the events (as ``lifecycle.Finish.events`` holds them) and drops
    progress and heartbeats: nothing is written before the run is claimed."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def event(self, run_id: int, level: str, event: str, message: str, data: dict | None) -> None:
        self.events.append(
            {"ts": datetime.now(UTC).isoformat(), "level": level, "event": event, "message": message, "data": data}
        )

    def progress(self, run_id: int, fraction: float | None, message: str | None) -> None:
        pass

    def heartbeat(self, run_id: int) -> None:
        pass

    def cancel_requested(self, run_id: int) -> bool:
        return False


class _RunOnly:
    """Stands for what only a run has (``ctx.services``, ``ctx.records``, ``ctx.targets``)."""

    def __init__(self, what: str):
        self._what = what

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise NotSpeculable(f"{self._what} needs the run")

    def __getattr__(self, name: str) -> Any:
        raise NotSpeculable(f"{self._what} needs the run")


class Speculation:
    """One handler call started from a command line, in a daemon thread of the worker."""

    def __init__(self, spec: HandlerSpec, requested: str | None, model: BaseModel, collected: list[str], **flags: bool):
        self.spec, self.requested, self.model = spec, requested, model
        self.dry_run, self.confirm = flags["dry_run"], flags["confirm"]
        self.cancel_event = threading.Event()
        self.journal = MemoryJournal()
        self.returned: dict | None = None
        self.raised: BaseException | None = None
        self._collected = collected
        self._done = threading.Event()
        self._read_end, self._write_end = os.pipe()  # readable once the call has ended (``fileno``)
        self._thread = threading.Thread(target=self._call, name="speculation", daemon=True)

    def start(self) -> Speculation:
        self._thread.start()
        return self

    def _call(self) -> None:
        ctx = RunContext(
            run_id=0,
            task_type=self.spec.name,
            journal=self.journal,
            records_factory=_RunOnly("ctx.records"),
            dry_run=self.dry_run,
            confirm=self.confirm,
            targets=Inventory(loader=_RunOnly("ctx.targets")),
            services=_RunOnly("ctx.services"),  # type: ignore[arg-type]
            secrets=self._collected,
            cancel_event=self.cancel_event,
            requested_type=self.requested,
        )
        try:
            self.returned = invoke(self.spec, ctx, self.model)
        except BaseException as exc:  # kept for the run to read as its own, if the run is this one
            self.raised = exc
        finally:
            self._done.set()
            os.write(self._write_end, b"x")

    def fileno(self) -> int:
        """Readable once the handler has returned or raised (``multiprocessing.connection.wait``)."""
        return self._read_end

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def usable(self) -> bool:
        """Whether its end may be a run's: False once the handler asked for what only a run has."""
        return not isinstance(self.raised, NotSpeculable)

    def cancel(self) -> None:
        """A cancel request for the run (or the speculation thrown away): the handler's next
        ``ctx.check_cancelled()`` raises."""
        self.cancel_event.set()

    def matches(self, claimed: dict[str, Any], collected: list[str]) -> bool:
        """Whether ``claimed`` (the fields of ``lifecycle.ClaimedRun``) is the run this speculation
        started: the same handler, asked by the same name, with the same resolved config and flags.
        ``collected`` gets the secrets its config resolves."""
        if claimed["task_name"] is not None or claimed["task_type"] != self.spec.name:
            return False
        try:
            model, flags = resolve_config(self.spec, claimed["config"], collected)
        except Exception:  # the run fails as it would have: executed as any
            return False
        dry_run = bool(claimed["dry_run"] or flags.get("dry_run", False))
        return (model, dry_run, claimed["confirm"], claimed["requested_type"]) == (
            self.model,
            self.dry_run,
            self.confirm,
            self.requested,
        )

    def ending(self, claimed: dict[str, Any], collected: list[str]) -> dict[str, Any] | None:
        """How the claimed run ended, as the fields of ``lifecycle.Finish`` but its id (its events
        re-stamped no earlier than the run's start and scrubbed of the run's secrets); None if
        the handler asked for what only a run has. Call once ``done``."""
        if not self.usable:
            return None
        journal = MemoryJournal()
        started = claimed["started_at"]
        started = started if started.tzinfo else started.replace(tzinfo=UTC)
        for event in self.journal.events:
            journal.events.append(
                {
                    **event,
                    "ts": max(datetime.fromisoformat(event["ts"]), started).isoformat(),
                    "message": secret_refs.scrub(event["message"], collected),
                    "data": _scrub_data(event["data"], collected) if event["data"] else None,
                }
            )

        def call() -> dict | None:
            if self.raised is not None:
                raise self.raised
            return self.returned

        ending = ending_of(call, journal, claimed["id"], collected)
        return {**vars(ending), "events": tuple(journal.events)}


def _resolved(spec: HandlerSpec | None, config: dict[str, Any], collected: list[str]) -> tuple | None:
    """The model and flags of ``config`` if ``spec`` may be started from it (``HandlerSpec.speculative``)."""
    if spec is None or not spec.speculative:
        return None
    try:
        model, flags = resolve_config(spec, config, collected)
    except Exception:  # the run, if any, says what is wrong
        return None
    if callable(spec.speculative) and not spec.speculative(model):
        return None
    return model, flags


def wanted(name: str, config: dict[str, Any], *, registry: Registry = REGISTRY) -> bool:
    """Whether ``start`` would start the handler ``name`` with ``config``: a built-in handler that
    opts in, for this config, which is valid."""
    return _resolved(registry.builtin(name), config, []) is not None


def start(name: str, config: dict[str, Any], *, dry_run: bool, confirm: bool, registry: Registry = REGISTRY):
    """Start the handler ``name`` with ``config`` now, if ``wanted``; its ``Speculation``, else None."""
    spec = registry.builtin(name)
    collected: list[str] = []
    resolved = _resolved(spec, config, collected)
    if resolved is None:
        return None
    model, flags = resolved
    requested = name if name != spec.name else None
    dry_run = dry_run or bool(flags.get("dry_run", False))
    return Speculation(spec, requested, model, collected, dry_run=dry_run, confirm=confirm).start()

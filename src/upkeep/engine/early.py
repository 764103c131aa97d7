"""A foreground worker process forked before its command has created the run.

``upkeep run`` forks its worker first thing (``fork_worker``), before it imports the CLI (Typer),
reads its config, opens the store and creates the run: meanwhile the worker imports the handler
the command names and what that handler preloads (DuckDB for ``logs.analyze``) on the other core.
``ForegroundRunner`` adopts it (``take``) and sends it what the command only knows later (the
settings, the services factory, the preload); from then on it is an ordinary worker
(``engine.worker.serve``). A worker nobody adopted (the run went to a daemon, the command failed
before any run existed) ends when this process closes its end of the pipe (``discard``, at exit),
or dies with it.

A worker forked with ``speculation_follows`` imports what the handler preloads while the command
parses its command line, and is then sent the speculation (the command line's config of a handler
that opts in, ``engine.speculate``), or None (``speculate_with``); given one, it starts the
handler at once. Until it is told to serve, a speculating worker answers
``("speculated", claimed fields, secrets)`` with ``("ended", run_id, Finish fields)`` when the
claimed run is the one it started, else ``("unmatched", run_id)``; ``("cancel", run_id)`` cancels
the handler. It imports neither the store nor SQLAlchemy for that: only serving does. This module
imports neither either, so the command can fork it as soon as it has imported the handler.

A cancel that comes before the worker serves (before ``("speculated", ...)`` is answered, or
between the answer and ``("start", ...)``) may be for the run it serves next: the command's
watcher sends it once. ``_BeforeServing`` keeps the run ids, and ``serve`` starts their cancel
flags set, so the handler stops at its first check rather than being killed after the grace.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import multiprocessing
import shutil
import tempfile
from multiprocessing.connection import wait
from typing import Any, NamedTuple


class Early(NamedTuple):
    process: Any  # multiprocessing.Process
    conn: Any  # this end of its pipe
    speculating: bool  # started the handler from the command line: told to serve only if not used


# the worker forked and not adopted yet
_early: Early | None = None
# it was forked with ``speculation_follows`` and has not been sent the speculation yet
_awaiting_speculation = False


def fork_worker(handler: str | None = None, *, speculation_follows: bool = False) -> None:
    """Fork the worker now; when ``handler`` names a built-in handler type, the worker imports its
    module and what it preloads, then waits to be adopted. ``speculation_follows``: it then waits
    for the speculation (or None), sent by ``speculate_with``."""
    global _early, _awaiting_speculation
    if _early is not None:
        return
    context = multiprocessing.get_context("fork")
    mine, theirs = context.Pipe()
    follows = speculation_follows and handler is not None
    process = context.Process(target=_main, args=(theirs, mine, handler, follows), name="upkeep-worker", daemon=False)
    process.start()
    theirs.close()
    _early = Early(process, mine, False)
    _awaiting_speculation = follows
    atexit.register(discard)


def speculate_with(speculation: dict[str, Any] | None) -> None:
    """Send the worker forked with ``speculation_follows`` the speculation to start (``config``,
    ``dry_run``, ``confirm`` of the command line; None: it starts nothing and serves what it is
    told, as any early worker)."""
    global _early, _awaiting_speculation
    if _early is None or not _awaiting_speculation:
        return
    _awaiting_speculation = False
    try:
        _early.conn.send(("speculation", speculation))
    except OSError:  # it died: ``take`` says so
        return
    _early = _early._replace(speculating=speculation is not None)


def take() -> Early | None:
    """The early worker for an executor to adopt, once; None if there is none or it has died."""
    global _early
    early, _early = _early, None
    if early is not None and not early.process.is_alive():
        early.conn.close()
        early.process.join()
        return None
    return early


def discard() -> None:
    """At exit (registered by ``fork_worker``): end the early worker if nobody adopted it (it reads
    EOF and exits)."""
    early = take()
    if early is None:
        return
    early.conn.close()
    early.process.join(2)
    if early.process.is_alive():
        early.process.kill()
        early.process.join()


class _BeforeServing:
    """This worker's reading of its pipe until it is told to serve: every message passes through
    ``receive``, which notes the runs it was asked to cancel (``cancelled``, handed to ``serve``)."""

    def __init__(self, conn: Any):
        self.conn = conn
        self.cancelled: set[int] = set()

    def receive(self) -> Any:
        """The next message, or None at the end of the pipe."""
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            return None
        if message is not None and message[0] == "cancel":
            self.cancelled.add(message[1])
        return message


def _main(conn: Any, parent_end: Any, handler: str | None, speculation_follows: bool) -> None:
    from upkeep.engine.detached import detach
    from upkeep.engine.registry import REGISTRY, preload

    parent_end.close()  # the parent's end: its close at the parent's exit is this worker's EOF
    detach()
    gc.disable()  # imports only make objects that live as long as the process
    # a module that fails to import fails again where the command or the run says why
    with contextlib.suppress(Exception):
        preload(REGISTRY.preload_of(handler) if handler else ())
    gc.freeze()  # what the imports made lives as long as the process: out of the collector's sight
    gc.enable()
    before = _BeforeServing(conn)
    speculation = None
    if speculation_follows:  # the first message (``speculate_with``)
        message = before.receive()
        if message is None:
            return
        speculation = message[1]
    scratch = None
    speculating = speculation is not None and handler is not None  # as ``Early.speculating`` says
    if speculating:
        from upkeep.engine import speculate

        # what the handler leaves in the temporary directory goes with this worker, whenever it ends
        scratch = tempfile.tempdir = tempfile.mkdtemp(prefix="upkeep-worker-")
        started = speculate.start(handler, **speculation)  # None: no run is this one
    try:
        message = _answer_speculation(before, started) if speculating else before.receive()
        if message is None:
            return
        _, settings_json, services, preloads = message
        from upkeep.engine.worker import serve

        serve(conn, settings_json, services, preloads, cancelled=frozenset(before.cancelled))
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _until_start(before: _BeforeServing) -> Any:
    """The start of serving, or None; a cancel before it is kept (``before.cancelled``): it may be
    for the run this worker answered "unmatched", which it serves next."""
    while (message := before.receive()) is not None and message[0] != "start":
        pass
    return message


def _answer_speculation(before: _BeforeServing, started: Any) -> Any:
    """Answer the claimed run with the speculation (once), taking cancels meanwhile (``before``
    keeps them for ``serve``); the message that follows (the start of serving, or None to end)."""
    conn = before.conn
    while True:
        if started is None or (started.done and not started.usable):
            # no result for the run: it will be served, whose modules import while the command works
            import upkeep.engine.worker  # noqa: F401
        elif not started.done and conn not in wait([conn, started]):
            continue  # it ended: usable or not?
        message = before.receive()
        if message is None or message[0] == "start":
            break
        kind, payload, *rest = message
        if kind == "cancel":
            if started is not None:
                started.cancel()
            continue
        if kind != "speculated":  # a run for a worker told what to serve: none here, end (it is lost)
            return None
        collected = list(rest[0])
        if started is None or not started.matches(payload, collected):
            if started is not None:
                started.cancel()  # thrown away: a handler that checks stops early
            conn.send(("unmatched", payload["id"]))
            return _until_start(before)
        while not started.done:  # the run is this one: wait for it, a cancel may come meanwhile
            if conn in wait([conn, started]):
                follow = before.receive()
                if follow is None:
                    return None
                if follow[0] == "cancel":
                    started.cancel()
        ending = started.ending(payload, collected)
        conn.send(("ended", payload["id"], ending) if ending is not None else ("unmatched", payload["id"]))
        return _until_start(before)  # serving the run, or another; or the end
    if started is not None:
        started.cancel()
    return message

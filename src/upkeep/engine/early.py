"""A foreground worker process forked as soon as its command has imported what both need.

``upkeep run`` imports SQLAlchemy, pydantic and the engine, then forks its worker first thing
(``fork_worker``), before it imports the CLI (Typer), reads its config, opens the store and creates
the run: meanwhile the worker imports the handler the command names and what that handler preloads
(DuckDB for ``logs.analyze``) on the other core. ``ForegroundRunner`` adopts it (``take``) and
sends it what the command only knows later (the settings, the services factory, the preload);
from then on it is an ordinary worker (``engine.worker.serve``). A worker nobody adopted (the run
went to a daemon, the command failed before any run existed) ends when this process closes its
end of the pipe (``discard``, at exit), or dies with it.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import multiprocessing
from typing import Any

from upkeep.engine.registry import REGISTRY, preload
from upkeep.engine.worker import detach, serve

# the worker forked and not adopted yet: (its multiprocessing process, this end of its pipe)
_early: tuple[Any, Any] | None = None


def fork_worker(handler: str | None = None) -> None:
    """Fork the worker now; when ``handler`` names a built-in handler type, the worker imports its
    module and what it preloads, then waits to be adopted."""
    global _early
    if _early is not None:
        return
    context = multiprocessing.get_context("fork")
    mine, theirs = context.Pipe()
    process = context.Process(target=_main, args=(theirs, mine, handler), name="upkeep-worker", daemon=False)
    process.start()
    theirs.close()
    _early = (process, mine)
    atexit.register(discard)


def take() -> tuple[Any, Any] | None:
    """The early worker (process, connection) for an executor to adopt, once; None if there is none
    or it has died."""
    global _early
    early, _early = _early, None
    if early is not None and not early[0].is_alive():
        early[1].close()
        early[0].join()
        return None
    return early


def discard() -> None:
    """At exit (registered by ``fork_worker``): end the early worker if nobody adopted it (it reads
    EOF and exits)."""
    early = take()
    if early is None:
        return
    process, conn = early
    conn.close()
    process.join(2)
    if process.is_alive():
        process.kill()
        process.join()


def _main(conn: Any, parent_end: Any, handler: str | None) -> None:
    parent_end.close()  # the parent's end: its close at the parent's exit is this worker's EOF
    detach()
    gc.disable()  # imports only make objects that live as long as the process
    # a module that fails to import fails again where the command or the run says why
    with contextlib.suppress(Exception):
        preload(REGISTRY.preload_of(handler) if handler else ())
    gc.enable()
    try:
        message = conn.recv()
    except (EOFError, OSError):
        return
    if message is None:
        return
    _, settings_json, services, preloads = message
    serve(conn, settings_json, services, preloads)

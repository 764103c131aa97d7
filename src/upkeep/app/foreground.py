"""Running a run here, in the foreground (``upkeep run``, ``upkeep backups verify|restore|drill``):
the run is reserved for this process (or taken when due), executed in a killable worker process
of its own (``ForegroundRunner``), so timeouts and cancels kill the whole process tree."""

from __future__ import annotations

import atexit
import os
from typing import Any

_RUNNERS: dict[int, Any] = {}


def label() -> str:
    """Who reserves and takes runs here: ``cli:HOST:PID``."""
    from upkeep.engine.lifecycle import HOSTNAME

    return f"cli:{HOSTNAME}:{os.getpid()}"


def take(store, run_id: int, by: str) -> bool:
    """Whether this process got the pending run (none else took it first)."""
    from upkeep.engine.lifecycle import dispatch_to

    return bool(dispatch_to(store, run_id, by))


def fork_worker_early(handler: str | None, sets: list[str] | None = None, *, dry_run=False, confirm=False) -> None:
    """Fork the worker of a foreground run as soon as the modules both processes need are imported:
    it imports what the handler ``handler`` names (if it is a built-in handler type) preloads
    (DuckDB for logs.analyze), while this process imports the CLI, reads the config and creates
    the run (``engine.early``).

    A handler that opts in (``HandlerSpec.speculative``) is imported here, without the store, and
    the worker is forked right after: it imports what the handler preloads while this process
    parses the command line's config (``sets``, the ``--set`` values: YAML's import and the parse
    are off the worker's path) and, if the handler wants it, sends it to start the handler with
    that config (and ``dry_run``, ``confirm``): the run keeps its result if its config is the same
    (``engine.speculate``). Any other handler waits for SQLAlchemy, pydantic and the engine: the
    worker needs them to serve, and importing them on both sides at once cost more CPU."""
    from upkeep.engine.early import fork_worker, speculate_with
    from upkeep.engine.registry import REGISTRY

    spec = REGISTRY.builtin(handler) if handler else None
    if spec is not None and spec.speculative:
        from upkeep.engine import speculate
        from upkeep.errors import UserError

        fork_worker(handler, speculation_follows=True)
        from upkeep.yamlload import parse_assignments

        try:
            config = parse_assignments(sets)
        except UserError:  # the command says why
            config = None
        wanted = config is not None and speculate.wanted(handler, config)
        speculate_with({"config": config, "dry_run": dry_run, "confirm": confirm} if wanted else None)
        return
    import upkeep.app.run_services  # noqa: F401
    import upkeep.engine.execute  # noqa: F401
    import upkeep.engine.foreground  # noqa: F401

    fork_worker(handler)


def runner(settings, store, preload: tuple[str, ...] = ()):
    r"""One worker process for all the runs this command executes (a tier runs several); it
    imports what the handler ``preload``\s as soon as it is forked."""
    from upkeep.app.run_services import RunServices
    from upkeep.engine.foreground import ForegroundRunner

    if id(store) not in _RUNNERS:
        made = ForegroundRunner(settings, store, preload, services=RunServices)
        _RUNNERS[id(store)] = made
        atexit.register(made.close)
    return _RUNNERS[id(store)]


def ran_here() -> bool:
    """Whether this process executed a run in a worker of its own (and so stops it at exit)."""
    return bool(_RUNNERS)

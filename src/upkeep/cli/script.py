"""The ``upkeep`` console script: ``upkeep.cli.main.main``, started with the cyclic garbage
collector held off.

Starting a command builds tens of thousands of objects that live as long as the process (modules,
classes, the tables of SQLAlchemy, pydantic and Rich) and leaves almost no cyclic garbage; the
collector, triggered by those allocations alone, traversed them again and again, about a tenth of
the CPU of ``upkeep tasks list``. Reference counting still frees everything that holds no cycle.
The collector comes back wherever garbage could pile up: in a command that runs longer than
``COLLECT_AFTER_SECONDS`` (``serve``, ``worker``, the wait of a foreground run) and in every forked
child (the worker of ``upkeep run``) from its start.

``upkeep run`` forks its worker here, as soon as the modules the worker shares with the command are
imported (``upkeep.app.foreground.fork_worker_early``): the worker imports the handler and DuckDB
while the command imports the CLI, reads its config and creates the run.
"""

from __future__ import annotations

import gc
import os
import sys
import threading

COLLECT_AFTER_SECONDS = 1.0


# the root's options that take a value (``upkeep.cli.main._global``) and ``upkeep run``'s
_ROOT_VALUES = ("--config", "-c", "--database-url", "--log-level")
_RUN_VALUES = ("--set", "--timeout", "--tier")


def foreground_run(argv: list[str]) -> tuple[bool, str | None]:
    """Whether ``argv`` is an ``upkeep run`` command (not its help), and the NAME_OR_TYPE it names
    (None for a tier's), read without importing the CLI."""
    if "--help" in argv or "-h" in argv:
        return False, None
    words = iter(argv)
    for word in words:
        if word in _ROOT_VALUES:
            next(words, None)
        elif not word.startswith("-"):
            break
    else:
        return False, None
    if word != "run":
        return False, None
    for word in words:
        if word in _RUN_VALUES:
            next(words, None)
        elif not word.startswith("-"):
            return True, word
    return True, None


def main() -> None:
    gc.disable()
    os.register_at_fork(after_in_child=gc.enable)
    running, handler = foreground_run(sys.argv[1:])
    if running:
        # before the imports below and the timer's thread: the worker imports what the run needs
        # on the other core meanwhile (``upkeep.app.foreground.fork_worker_early``)
        from upkeep.app.foreground import fork_worker_early

        fork_worker_early(handler)
    timer = threading.Timer(COLLECT_AFTER_SECONDS, gc.enable)
    timer.daemon = True
    timer.start()
    from upkeep.cli.main import main as run_command

    run_command()

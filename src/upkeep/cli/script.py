"""The ``upkeep`` console script: ``upkeep.cli.main.main``, started with the cyclic garbage
collector held off.

Starting a command builds tens of thousands of objects that live as long as the process (modules,
classes, the tables of SQLAlchemy, pydantic and Rich) and leaves almost no cyclic garbage; the
collector, triggered by those allocations alone, traversed them again and again, about a tenth of
the CPU of ``upkeep tasks list``. Reference counting still frees everything that holds no cycle.
The collector comes back wherever garbage could pile up: in a command that runs longer than
``COLLECT_AFTER_SECONDS`` (``serve``, ``worker``, the wait of a foreground run) and in every forked
child (the worker of ``upkeep run``) from its start, with what it inherited frozen.

``upkeep run`` forks its worker here, as soon as the modules the worker shares with the command are
imported (``upkeep.app.foreground.fork_worker_early``): the worker imports the handler and DuckDB
while the command imports the CLI, reads its config and creates the run; a read-only handler that
opts in is started there from this command line (``upkeep.engine.speculate``).
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


def _collect_in_child() -> None:
    """A forked child collects again, but not what it inherited: the objects its parent made
    before the fork live as long as it does, and its first collection walked them all (15-20 ms
    in ``upkeep run``'s worker before it started its handler)."""
    gc.freeze()
    gc.enable()


def run_options(argv: list[str]) -> tuple[list[str], bool, bool]:
    """The ``--set`` values, ``--dry-run`` and ``--yes`` of an ``upkeep run`` command line: what a
    worker that starts the handler before the run exists starts it with (the run's own config
    decides whether its result is used, ``upkeep.engine.speculate``)."""
    sets: list[str] = []
    words = iter(argv)
    for word in words:
        if word == "--set":
            value = next(words, None)
            if value is not None:
                sets.append(value)
        elif word.startswith("--set="):
            sets.append(word.removeprefix("--set="))
        elif word in _ROOT_VALUES or word in _RUN_VALUES:
            next(words, None)
    return sets, "--dry-run" in argv, "--yes" in argv or "-y" in argv


def main() -> None:
    gc.disable()
    os.register_at_fork(after_in_child=_collect_in_child)
    running, handler = foreground_run(sys.argv[1:])
    if running:
        # before the imports below and the timer's thread: the worker imports what the run needs
        # (and may start it) on the other core meanwhile (``upkeep.app.foreground.fork_worker_early``)
        from upkeep.app.foreground import fork_worker_early

        sets, dry_run, confirm = run_options(sys.argv[1:])
        fork_worker_early(handler, sets, dry_run=dry_run, confirm=confirm)
    timer = threading.Timer(COLLECT_AFTER_SECONDS, gc.enable)
    timer.daemon = True
    timer.start()
    from upkeep.cli.main import main as run_command

    run_command()

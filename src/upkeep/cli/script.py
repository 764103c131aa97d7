"""The ``upkeep`` console script: ``upkeep.cli.main.main``, started with the cyclic garbage
collector held off.

Starting a command builds tens of thousands of objects that live as long as the process (modules,
classes, the tables of SQLAlchemy, pydantic and Rich) and leaves almost no cyclic garbage; the
collector, triggered by those allocations alone, traversed them again and again, about a tenth of
the CPU of ``upkeep tasks list``. Reference counting still frees everything that holds no cycle.
The collector comes back wherever garbage could pile up: in a command that runs longer than
``COLLECT_AFTER_SECONDS`` (``serve``, ``worker``, the wait of a foreground run) and in every forked
child (the worker of ``upkeep run``) from its start.
"""

from __future__ import annotations

import gc
import os
import threading

COLLECT_AFTER_SECONDS = 1.0


def main() -> None:
    gc.disable()
    os.register_at_fork(after_in_child=gc.enable)
    timer = threading.Timer(COLLECT_AFTER_SECONDS, gc.enable)
    timer.daemon = True
    timer.start()
    from upkeep.cli.main import main as run_command

    run_command()

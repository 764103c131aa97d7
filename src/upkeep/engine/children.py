"""Child processes kept running: ``upkeep worker``'s Celery worker, ``upkeep scheduler``'s alerter."""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def keep_running(
    target: Callable[..., None],
    args: tuple,
    *,
    name: str,
    what: str,
    stop: threading.Event,
    max_backoff: float = 30.0,
    stop_timeout: float | None = None,
) -> None:
    """Run ``target(*args)`` in a spawned child process until ``stop`` is set, and start a new one
    whenever it exits: after 1 s, or twice the last wait (up to ``max_backoff``) when it died
    within a minute of its start. When ``stop`` is set, the child gets SIGTERM and this waits
    ``stop_timeout`` seconds for it to end (None: as long as it takes)."""
    context = multiprocessing.get_context("spawn")
    backoff = 1.0
    while not stop.is_set():
        child = context.Process(target=target, args=args, name=name)
        started = time.monotonic()
        child.start()
        while child.is_alive() and not stop.is_set():
            child.join(0.5)
        if stop.is_set():
            if child.is_alive():
                child.terminate()
            child.join(stop_timeout)
            return
        backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, max_backoff)
        log.error("%s exited (exit code %s); starting a new one in %gs", what, child.exitcode, backoff)
        stop.wait(backoff)

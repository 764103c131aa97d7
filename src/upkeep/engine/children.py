"""Child processes: ``upkeep worker``'s Celery worker kept running, and multiprocessing's resource
tracker stopped when nothing uses it."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# Held while this process starts a multiprocessing child and while it stops the fork server or
# the resource tracker: a start passes the tracker's pipe on to the child, and a stop between
# the two would hand it a closed (or reused) descriptor.
START_LOCK = threading.RLock()


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


def stop_resource_tracker_if_unused() -> None:
    """Stop multiprocessing's resource tracker when this process has no child of multiprocessing's
    and no fork server. The first worker or spawned child starts it, and it would stay for the
    daemon's life: a whole interpreter (7 MB PSS) beside an idle daemon. The next child starts it
    again. It exits once every process holding its pipe has closed it, here only this one, so it is
    reaped in a thread rather than waited for: were another holder left, no caller would hang."""
    from multiprocessing import forkserver, resource_tracker

    tracker = resource_tracker._resource_tracker
    with START_LOCK, tracker._lock:
        if multiprocessing.active_children() or forkserver._forkserver._forkserver_pid is not None:
            return
        if tracker._fd is None:
            return
        os.close(tracker._fd)
        pid, tracker._fd, tracker._pid = tracker._pid, None, None
    if pid is not None:
        threading.Thread(target=_reap, args=(pid,), name="reap-resource-tracker", daemon=True).start()


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)

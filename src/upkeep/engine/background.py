"""``Background``: a loop in a daemon thread of its own, started and stopped the same way everywhere
(the scheduler, the embedded executor, the Celery dispatcher, the alerter and its hand-over to a
child process)."""

from __future__ import annotations

import threading


class Background:
    """``start()`` runs ``run()`` in a daemon thread named ``thread_name``; ``run()`` returns once
    ``self._stop`` is set. ``stop()`` sets it, calls ``wake()`` (a loop asleep on something other
    than ``self._stop`` is woken there) and waits up to ``timeout`` (``join_seconds``) for the thread."""

    thread_name = "upkeep-loop"
    join_seconds: float = 10.0

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        raise NotImplementedError

    def wake(self) -> None:
        """Wake the loop where it sleeps, if not on ``self._stop``."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self.wake()
        if self._thread:
            self._thread.join(self.join_seconds if timeout is None else timeout)

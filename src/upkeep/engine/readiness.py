"""Which of the embedded pool's workers have something to say: one selector kept between waits.

``multiprocessing.connection.wait`` builds a selector and registers every pipe and process
sentinel on each call; the pool's loop waits once or twice per hand-over, so at thousands of
runs a minute that set-up was a measurable share of the supervisor's time. This one registers
them again only when the set of workers changed.
"""

from __future__ import annotations

import selectors
from typing import Any

PIPE, EXITED, WOKEN = "pipe", "exited", "woken"


class Readiness:
    def __init__(self) -> None:
        self._selector = selectors.PollSelector()
        self._slots: list[Any] = []  # held, so no new slot can take the id of one registered
        self._wake_fd: int | None = None

    def wait(self, slots: list[Any], wake_fd: int, timeout: float) -> list[tuple[str, Any]]:
        """Wait up to ``timeout`` seconds; returns what is ready: (PIPE, slot) for a message,
        (EXITED, slot) for a process that may have ended, (WOKEN, None) for the wake-up socket."""
        if (
            wake_fd != self._wake_fd
            or len(slots) != len(self._slots)
            or any(a is not b for a, b in zip(slots, self._slots, strict=True))
        ):
            self._register(slots, wake_fd)
        return [key.data for key, _ in self._selector.select(max(0.0, timeout))]

    def _register(self, slots: list[Any], wake_fd: int) -> None:
        self._selector.close()
        self._selector = selectors.PollSelector()
        for slot in slots:
            self._selector.register(slot.conn, selectors.EVENT_READ, (PIPE, slot))
            self._selector.register(slot.process.sentinel, selectors.EVENT_READ, (EXITED, slot))
        self._selector.register(wake_fd, selectors.EVENT_READ, (WOKEN, None))
        self._slots, self._wake_fd = list(slots), wake_fd

    def close(self) -> None:
        self._selector.close()
        self._slots = []

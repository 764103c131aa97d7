"""Polling for a state the system reaches on its own: tests assert the state, never how long it took."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    condition: Callable[[], T], what: str, *, timeout: float = 30.0, logs: Callable[[], str] = lambda: ""
) -> T:
    """``condition()``'s first truthy value, polled until ``timeout`` seconds have passed; else an
    AssertionError naming ``what``, with ``logs()`` appended."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}\n{logs()}".rstrip())
        time.sleep(0.05)

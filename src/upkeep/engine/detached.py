"""What a worker process does first, whoever forked it: a process group of its own and death with
its parent. Without the store, so that ``upkeep run``'s worker (``engine.early``) needs none."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this process when its parent dies; exit now if it already has."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def detach() -> None:
    """What a worker process does first: a session (and process group) of its own, which a
    deadline or a cancel kills whole; death with its parent; Ctrl-C is its parent's to handle."""
    os.setsid()
    die_with_parent(os.getppid())
    signal.signal(signal.SIGINT, signal.SIG_IGN)

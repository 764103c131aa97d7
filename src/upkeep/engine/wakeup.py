"""Waking sleepers when something changes, instead of polling on a fixed interval.

The scheduler sleeps until its next due slot and the executor until its next due run; a change
(a task enabled, a run triggered, a run finished) wakes them early:
- in the same process and across processes on one host: a Unix datagram socket per sleeper in
  ``<data_dir>/wake/``; ``broadcast`` sends one byte to each;
- across hosts on PostgreSQL: ``NOTIFY upkeep_wake``, which every sleeper ``LISTEN``s to.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from pathlib import Path

from upkeep.store.db import Store

log = logging.getLogger(__name__)
CHANNEL = "upkeep_wake"


def _wake_dir(data_dir: Path) -> Path:
    path = Path(data_dir) / "wake"
    path.mkdir(parents=True, exist_ok=True)
    return path


def broadcast(store: Store | None, data_dir: Path) -> None:
    """Wake every sleeper on this host (and, on PostgreSQL, on every host)."""
    directory = _wake_dir(data_dir)
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.setblocking(False)
    try:
        for path in directory.glob("*.sock"):
            try:
                sender.sendto(b"!", str(path))
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):
                    path.unlink()  # its owner is gone
            except (BlockingIOError, OSError):
                pass  # its buffer is full: it is awake already
    finally:
        sender.close()
    if store is not None and store.is_postgres:
        try:
            with store.engine.connect() as conn:
                conn.exec_driver_sql(f"NOTIFY {CHANNEL}")
                conn.commit()
        except Exception:
            log.debug("NOTIFY failed", exc_info=True)


class Notifier:
    """One sleeper's wake-up socket: ``fileno()`` for select/wait, ``wait(timeout)``, ``wake()``."""

    def __init__(self, store: Store | None, data_dir: Path):
        self.path = _wake_dir(data_dir) / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.setblocking(False)
        self._listener: threading.Thread | None = None
        self._closed = threading.Event()
        if store is not None and store.is_postgres:
            self._listener = threading.Thread(target=self._listen, args=(store,), daemon=True, name="pg-listen")
            self._listener.start()

    def fileno(self) -> int:
        return self.sock.fileno()

    def wake(self) -> None:
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sender.setblocking(False)  # a full buffer means a wake-up is already pending
        try:
            sender.sendto(b"!", str(self.path))
        except OSError:
            pass
        finally:
            sender.close()

    def drain(self) -> None:
        while True:
            try:
                self.sock.recv(64)
            except (BlockingIOError, OSError):
                return

    def wait(self, timeout: float | None) -> bool:
        """Sleep until woken or ``timeout``; True when woken."""
        import select

        ready, _, _ = select.select([self.sock], [], [], timeout)
        self.drain()
        return bool(ready)

    def close(self) -> None:
        self._closed.set()
        self.sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _listen(self, store: Store) -> None:
        import psycopg

        dsn = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._closed.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    for _ in conn.notifies(timeout=None, stop_after=None):
                        if self._closed.is_set():
                            return
                        self.wake()
            except Exception:
                if self._closed.wait(1.0):
                    return

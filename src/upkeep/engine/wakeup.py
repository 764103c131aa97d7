"""Waking sleepers when something changes, instead of polling on a fixed interval.

The scheduler sleeps until its next due slot and the executor until its next due run; a change
(a task enabled, a run triggered, a run finished) wakes them early:
- in the same process and across processes on one host: a Unix datagram socket per sleeper in
  ``<data_dir>/wake/``; ``wake_local`` sends one byte to each (but the sender's own);
- across hosts on PostgreSQL: ``NOTIFY upkeep_wake`` with the sender's *wake domain* (host and
  wake directory) as payload. One ``LISTEN`` connection per process wakes that process's
  sleepers, and ignores its own domain's notifications: the sockets delivered those already.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from upkeep.private import PRIVATE
from upkeep.store.db import Store

log = logging.getLogger(__name__)
CHANNEL = "upkeep_wake"
_NOTIFY = sa.text("SELECT pg_notify(:channel, :domain)")


def _wake_dir(data_dir: Path) -> Path:
    return PRIVATE.mkdir(Path(data_dir) / "wake")


def wake_domain(data_dir: Path) -> str:
    """Who shares this host's wake sockets: a NOTIFY from the same domain needs no delivery."""
    where = f"{socket.gethostname()}:{_wake_dir(data_dir).resolve()}"
    return hashlib.sha1(where.encode()).hexdigest()[:16]


def wake_local(data_dir: Path, *, exclude: Notifier | None = None) -> None:
    """Wake every sleeper on this host, except ``exclude`` (a sleeper does not wake itself)."""
    directory = _wake_dir(data_dir)
    skip = exclude.path if exclude is not None else None
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.setblocking(False)
    try:
        for path in directory.glob("*.sock"):
            if path == skip:
                continue
            try:
                sender.sendto(b"!", str(path))
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):
                    path.unlink()  # its owner is gone
            except (BlockingIOError, OSError):
                pass  # its buffer is full: it is awake already
    finally:
        sender.close()


def notify_hosts(conn: Connection, data_dir: Path) -> None:
    """Wake the sleepers on other hosts when ``conn``'s transaction commits (PostgreSQL only)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_NOTIFY, {"channel": CHANNEL, "domain": wake_domain(data_dir)})


def broadcast(store: Store | None, data_dir: Path, *, exclude: Notifier | None = None) -> None:
    """Wake every sleeper on this host (and, on PostgreSQL, on every host)."""
    wake_local(data_dir, exclude=exclude)
    if store is not None and store.is_postgres:
        try:
            with store.engine.begin() as conn:
                notify_hosts(conn, data_dir)
        except Exception:
            log.debug("NOTIFY failed", exc_info=True)


class Notifier:
    """One sleeper's wake-up socket: ``fileno()`` for select/wait, ``wait(timeout)``, ``wake()``."""

    def __init__(self, store: Store | None, data_dir: Path):
        self.path = _wake_dir(data_dir) / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        PRIVATE.protect(self.path)  # only upkeep's own processes may wake it
        self.sock.setblocking(False)
        self._listener: _Listener | None = None
        if store is not None and store.is_postgres:
            self._listener = _Listener.join(store, data_dir, self)

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
        if self._listener is not None:
            self._listener.leave(self)
        self.sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


class _Listener:
    """This process's one ``LISTEN`` connection per database and wake domain: a notification
    from another domain wakes every sleeper of the process that joined."""

    _lock = threading.Lock()
    _running: dict[tuple[str, str], _Listener] = {}

    def __init__(self, dsn: str, domain: str):
        self.dsn, self.domain = dsn, domain
        self.sleepers: set[Notifier] = set()
        self.closed = threading.Event()
        threading.Thread(target=self._listen, daemon=True, name="pg-listen").start()

    @classmethod
    def join(cls, store: Store, data_dir: Path, sleeper: Notifier) -> _Listener:
        dsn = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        key = (dsn, wake_domain(data_dir))
        with cls._lock:
            listener = cls._running.get(key)
            if listener is None:
                listener = cls._running[key] = cls(*key)
            listener.sleepers.add(sleeper)
        return listener

    def leave(self, sleeper: Notifier) -> None:
        with self._lock:
            self.sleepers.discard(sleeper)
            if not self.sleepers:
                self.closed.set()
                self._running.pop((self.dsn, self.domain), None)

    def _listen(self) -> None:
        import psycopg

        while not self.closed.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not self.closed.is_set():
                        # returns after a second without notifications, to look at ``closed``
                        for note in conn.notifies(timeout=1.0):
                            if note.payload != self.domain:
                                for sleeper in list(self.sleepers):
                                    sleeper.wake()
            except Exception:
                if self.closed.wait(1.0):
                    return

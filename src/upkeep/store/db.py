"""Database access: engines, sessions, migrations.

SQLite runs in WAL mode; every write transaction starts with ``BEGIN IMMEDIATE`` so two writers
serialise at the start instead of failing half-way. PostgreSQL uses ordinary transactions plus
``FOR UPDATE SKIP LOCKED`` where work is claimed (see ``engine``).
"""

from __future__ import annotations

import ast
import fcntl
import logging
import random
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, OperationalError

from upkeep.errors import ConnectionFailed, UserError

# The ORM is imported by the first session: a command that only reads Core tables (``tables``)
# never loads it.
if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.+?)\s*$", re.MULTILINE)
ADVISORY_LOCK_ID = 0x75706B6565  # "upkee": serialises concurrent migrators on PostgreSQL
T = TypeVar("T")


def redact_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def _sqlite_pragmas(dbapi_connection, record) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event issues BEGIN itself
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.close()
    record.info[_BUSY_TIMEOUT] = BUSY_TIMEOUT_MS


def _no_autocheckpoint(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


SQLITE_WRITE_WAIT_SECONDS = 30.0
BUSY_TIMEOUT_MS = 30000
_BUSY_TIMEOUT = "upkeep_busy_timeout_ms"  # the connection record's: what the connection's busy_timeout is


def _set_busy_timeout(conn, ms: int) -> None:
    """Set the busy timeout of ``conn``'s SQLite connection, if it is not that already: a write
    transaction needs 0 (``_sqlite_begin`` waits itself) and a read 30 s. Only a change costs a
    statement; setting it around every write took two more statements, each of which gives up the
    GIL, per transaction of the run hot path."""
    info = conn.connection.info
    if info.get(_BUSY_TIMEOUT) != ms:
        conn.connection.driver_connection.execute(f"PRAGMA busy_timeout={ms}")
        info[_BUSY_TIMEOUT] = ms


def _sqlite_begin(conn) -> None:
    if not conn.get_execution_options().get("sqlite_immediate", False):
        _set_busy_timeout(conn, BUSY_TIMEOUT_MS)
        conn.exec_driver_sql("BEGIN")
        return
    # Take the write lock ourselves: SQLite's busy handler sleeps 1, 2, 5, 10 ... 100 ms between
    # tries, so with several writer processes a waiter sleeps through most of the time the lock is
    # free. Short random sleeps keep the lock busy instead of the waiters. A connection keeps the
    # busy timeout of 0 until a read transaction uses it (a statement of a write transaction holds
    # the write lock already, and its commit in WAL mode waits for nothing).
    _set_busy_timeout(conn, 0)
    raw = conn.connection.driver_connection
    deadline = time.monotonic() + SQLITE_WRITE_WAIT_SECONDS
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
            time.sleep(random.uniform(0.0001, 0.001))


# A pooled PostgreSQL connection idle longer than this is pinged before use, and replaced if the
# server went away (a restart, a dropped TCP connection). A connection in steady use is not: a ping
# per checkout is a round trip per transaction. When the server goes away under a busy connection,
# its statement fails, SQLAlchemy discards the whole pool and the caller's retry reconnects.
PING_AFTER_IDLE_SECONDS = 1.0


def _note_idle(_dbapi_connection, record, *_args) -> None:
    record.info["idle_since"] = time.monotonic()


def once_more_if_disconnected(operation: Callable[[], T]) -> T:
    """Run ``operation``; if the server connection broke under it, run it once more on a new one.

    For operations that are safe to repeat: conditional transitions (claim, finish) whose second
    attempt changes nothing if the first one committed before the connection broke.
    """
    try:
        return operation()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        log.warning("database connection lost (%s); retrying once", str(exc.orig).strip().splitlines()[0])
        return operation()


def _create_private(path: Path) -> None:
    """The SQLite file (and its directory) created private before SQLite opens it: its -wal and
    -shm files take the same mode."""
    from upkeep.private import PRIVATE

    PRIVATE.mkdir(path.parent)
    try:
        PRIVATE.open(path).close()
    except FileExistsError:
        pass


def migration_heads(versions_dir: Path = MIGRATIONS_DIR / "versions") -> set[str] | None:
    """The head revisions of the migration files, read from their ``revision`` and
    ``down_revision`` lines without importing Alembic (whose import, with Mako's and Pygments',
    cost every command about 0.1 s). None when a file does not say them plainly."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions_dir.glob("*.py"):
        found = dict(match.groups() for match in _REVISION_LINE.finditer(path.read_text()))
        try:
            revision = ast.literal_eval(found["revision"])
            down = ast.literal_eval(found["down_revision"])
        except (KeyError, ValueError, SyntaxError):
            return None
        if not isinstance(revision, str):
            return None
        revisions.add(revision)
        parents.update(down if isinstance(down, tuple | list) else [] if down is None else [down])
    return revisions - parents


class Store:
    """One database: an engine for reads, one for writes, and session helpers."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 5):
        self.url = url
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise UserError(
                f"invalid database URL {url!r}",
                hint="use sqlite:///path/upkeep.db or postgresql+psycopg://user:pass@host/db",
            ) from exc
        self.dialect = parsed.get_backend_name()
        kwargs: dict = {"echo": echo, "future": True}
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                _create_private(Path(parsed.database))
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        elif self.dialect == "postgresql":
            kwargs.update(pool_size=pool_size, max_overflow=10)  # pinged when idle: see _ping_if_idle
            # a server stopped mid-statement can leave the client waiting for a reply forever:
            # TCP keepalives find the dead connection within seconds, so a worker records what it
            # kept and beats again once the store is back, instead of hanging
            kwargs["connect_args"] = {
                "connect_timeout": 5,
                "keepalives": 1,
                "keepalives_idle": 2,
                "keepalives_interval": 1,
                "keepalives_count": 3,
                "tcp_user_timeout": 5000,
            }
        else:
            raise UserError(
                f"unsupported database {self.dialect!r}",
                hint="use SQLite or PostgreSQL (postgresql+psycopg://)",
            )
        try:
            self.engine: Engine = sa.create_engine(url, **kwargs)
        except (ArgumentError, ModuleNotFoundError) as exc:
            raise UserError(f"cannot use database URL {redact_url(url)}: {exc}") from exc
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            event.listen(self.engine, "connect", _note_idle)
            event.listen(self.engine, "checkin", _note_idle)
            event.listen(self.engine, "checkout", self._ping_if_idle)
        self.write_engine = self.engine.execution_options(sqlite_immediate=True)
        self._sessions: dict[bool, Callable[[], Session]] = {}
        # the session of the ``transaction`` open in this thread, which writes and reads inside it join
        self._joined: ContextVar[Session | None] = ContextVar(f"upkeep-store-{id(self)}", default=None)

    def _ping_if_idle(self, dbapi_connection, record, _proxy) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) < PING_AFTER_IDLE_SECONDS:
            return
        try:
            self.engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool retries the checkout with a new connection
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def _session(self, write: bool) -> Session:
        if write not in self._sessions:
            from sqlalchemy.orm import sessionmaker

            bind = self.write_engine if write else self.engine
            self._sessions[write] = sessionmaker(bind=bind, expire_on_commit=False)
        return self._sessions[write]()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One write transaction for a use case made of others (``upkeep apply``): every ``write``,
        ``read`` and their connections opened inside it, in this thread, join it, so all of it
        commits or, on any error, none of it."""
        joined = self._joined.get()
        if joined is not None:
            yield joined
            return
        with self._session(True) as session, session.begin():
            token = self._joined.set(session)
            try:
                yield session
            finally:
                self._joined.reset(token)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: committed on success, rolled back on error (inside a
        ``transaction``: part of it, flushed)."""
        joined = self._joined.get()
        if joined is not None:
            yield joined
            joined.flush()
            return
        with self._session(True) as session, session.begin():
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A write transaction on a bare connection: for the run hot path, where a Session's
        bookkeeping costs more than the statements (Core statements only)."""
        joined = self._joined.get()
        if joined is not None:
            yield joined.connection()
            return
        with self.write_engine.begin() as conn:
            yield conn

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        joined = self._joined.get()
        if joined is not None:
            yield joined.connection()
            return
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Session]:
        joined = self._joined.get()
        if joined is not None:  # a read inside a transaction sees what it wrote so far
            yield joined
            return
        with self._session(False) as session, session.begin():
            yield session

    def defer_checkpoints(self) -> None:
        """SQLite: this store's commits stop checkpointing the WAL (``wal_autocheckpoint=0``); the
        caller checkpoints with ``checkpoint`` instead (``upkeep.engine.checkpoints``). Connections
        already pooled are closed, so every connection from now on has it."""
        if not self.is_sqlite:
            return
        event.listen(self.engine, "connect", _no_autocheckpoint)
        self.engine.dispose()

    def checkpoint(self) -> tuple[int, int, int]:
        """SQLite: copy what the WAL holds into the database as far as no reader prevents it,
        waiting for no reader or writer (a PASSIVE checkpoint). Returns SQLite's (busy, frames in
        the WAL, frames checkpointed)."""
        raw = self.engine.raw_connection()
        try:
            busy, frames, done = raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            raw.close()
        return busy, frames, done

    def check_connection(self) -> None:
        """Raise ``ConnectionFailed`` with a clear message when the database cannot be reached."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise ConnectionFailed(
                f"cannot connect to the database {redact_url(self.url)}: {reason}",
                hint="check UPKEEP_DATABASE_URL and that the server is running",
            ) from None

    def dispose(self) -> None:
        self.engine.dispose()

    # --- migrations -------------------------------------------------------------------------

    def _alembic_config(self, connection):
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["connection"] = connection
        return cfg

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        from alembic.script import ScriptDirectory

        with self.engine.connect() as conn:
            return ScriptDirectory.from_config(self._alembic_config(conn)).get_current_head()

    def at_head(self) -> bool:
        """Whether the schema is at the migrations' single head, from one query and the migration
        files: what every command asks before it uses the store. False when unsure (Alembic decides)."""
        heads = migration_heads()
        if not heads or len(heads) != 1:
            return False
        try:
            with self.engine.connect() as conn:
                rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").fetchall()
        except DBAPIError:  # no alembic_version table: a new database
            return False
        return [row[0] for row in rows] == list(heads)

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to ``revision``. Concurrent callers serialise on a lock."""
        self.check_connection()
        if revision == "head" and self.at_head():
            return
        from alembic import command

        if self.is_postgres:
            with self.engine.connect() as conn:
                conn.exec_driver_sql(f"SELECT pg_advisory_lock({ADVISORY_LOCK_ID})")
                conn.commit()
                try:
                    with conn.begin():
                        command.upgrade(self._alembic_config(conn), revision)
                finally:
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({ADVISORY_LOCK_ID})")
                    conn.commit()
            return
        with self._sqlite_migration_lock(), self.write_engine.connect() as conn, conn.begin():
            command.upgrade(self._alembic_config(conn), revision)

    @contextmanager
    def _sqlite_migration_lock(self) -> Iterator[None]:
        database = make_url(self.url).database
        if not database or database == ":memory:":
            yield
            return
        lock_path = Path(database).with_suffix(".migrate.lock")
        from upkeep.private import PRIVATE

        with PRIVATE.open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def is_up_to_date(self) -> bool:
        return self.at_head() or self.current_revision() == self.head_revision()

"""The records API: small per-domain keyed JSON records that handlers keep between runs.

Examples: the backup catalog (``backup``), health failure counters (``health``), rotation state
(``logs.rotate``), capacity samples (``capacity``). Handlers reach it as ``ctx.records(domain)`` and
never touch SQLAlchemy.

The functions (``get``, ``put``, ``items``...) work inside a caller's transaction (the alerter keeps
its cursor, outbox and history there, committed with the alert state it changes); ``Records`` is
the same operations, each in a transaction of its own.

``CONFIG_DOMAIN`` holds what ``upkeep apply`` recorded for every process: the targets inventory,
the alert channels and the names of the secrets the config file references.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from upkeep.store.db import Store
from upkeep.store.run_tables import records as RECORDS

# Reads are Core statements (on a connection or a session alike): every run reads its secrets'
# names here as it starts, and a worker then needs no ORM. A write that replaces a record
# (``put``, ``Records.update``) uses the session's ``Record``.
if TYPE_CHECKING:
    from sqlalchemy.orm import Session

CONFIG_DOMAIN = "_upkeep"  # records written by `upkeep apply`: targets, channels, secret_names


def _is_postgres(s: Session | Connection) -> bool:
    return (s if isinstance(s, Connection) else s.get_bind()).dialect.name == "postgresql"


def _prefixed(query, prefix: str):
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return query.where(RECORDS.c.key.like(f"{escaped}%", escape="\\"))


# built once: every run reads the secret names before its handler starts, and building the
# statement each time cost more than the read itself
_VALUE = sa.select(RECORDS.c.value).where(
    RECORDS.c.domain == sa.bindparam("domain"), RECORDS.c.key == sa.bindparam("key")
)


def get(s: Session | Connection, domain: str, key: str, default: Any = None, *, lock: bool = False) -> Any:
    query = _VALUE
    if lock and _is_postgres(s):
        query = query.with_for_update()
    row = s.execute(query, {"domain": domain, "key": key}).first()
    return row[0] if row is not None else default


def put(s: Session, domain: str, key: str, value: Any, *, lock: bool = False) -> None:
    from upkeep.store.models import Record

    now = datetime.now(UTC)
    row = s.get(Record, (domain, key), with_for_update=lock and _is_postgres(s))
    if row is None:
        s.add(Record(domain=domain, key=key, value=value, created_at=now, updated_at=now))
    else:
        row.value = value
        row.updated_at = now
    s.flush()


def delete(s: Session | Connection, domain: str, key: str) -> bool:
    return s.execute(sa.delete(RECORDS).where(RECORDS.c.domain == domain, RECORDS.c.key == key)).rowcount > 0


def items(s: Session | Connection, domain: str, prefix: str = "", limit: int | None = None) -> list[tuple[str, Any]]:
    """Records whose key starts with ``prefix``, ordered by key."""
    query = sa.select(RECORDS.c.key, RECORDS.c.value).where(RECORDS.c.domain == domain)
    if prefix:
        query = _prefixed(query, prefix)
    query = query.order_by(RECORDS.c.key)
    if limit is not None:
        query = query.limit(limit)
    return [(k, v) for k, v in s.execute(query)]


def get_many(s: Session | Connection, domain: str, keys: list[str]) -> dict[str, Any]:
    """The values of ``keys`` that exist (one query per 500 keys)."""
    out: dict[str, Any] = {}
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        query = sa.select(RECORDS.c.key, RECORDS.c.value).where(RECORDS.c.domain == domain, RECORDS.c.key.in_(chunk))
        if _is_postgres(s):
            query = query.with_for_update()
        out.update(dict(s.execute(query).all()))
    return out


def put_many(s: Session | Connection, domain: str, values: Mapping[str, Any]) -> None:
    """Insert or replace many records with one statement (an upsert on both dialects)."""
    EncodedPuts(s, domain, values).write(s)


# the records table without column types: its rows reach the driver as ``EncodedPuts`` encoded them
_UNTYPED = sa.table("records", *(sa.column(c.name) for c in RECORDS.c))


class EncodedPuts:
    """``put_many`` in two steps: the values encoded for the driver by the columns' own types (JSON,
    timestamps), then written in one executemany. The encoding is most of the Python work, a few
    microseconds a record; the alerter does it before it takes SQLite's write lock, which its
    writes then hold for the driver's work alone (the measurements: benchmarks/README.md)."""

    def __init__(self, s: Session | Connection, domain: str, values: Mapping[str, Any]):
        dialect = (s if isinstance(s, Connection) else s.get_bind()).dialect
        value, stamp = (_encoder(RECORDS.c[name].type, dialect) for name in ("value", "updated_at"))
        now = stamp(datetime.now(UTC))
        self.postgres = dialect.name == "postgresql"
        self.rows = [
            {"domain": domain, "key": k, "value": value(v), "created_at": now, "updated_at": now}
            for k, v in values.items()
        ]

    def write(self, s: Session | Connection) -> None:
        if not self.rows:
            return
        if self.postgres:
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(_UNTYPED)
        stmt = stmt.on_conflict_do_update(
            index_elements=["domain", "key"],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
        )
        connection = s if isinstance(s, Connection) else s.connection()
        connection.execute(stmt, self.rows)  # executemany: compiled once, batched by the driver


def _encoder(column_type: sa.types.TypeEngine, dialect: sa.engine.Dialect) -> Callable[[Any], Any]:
    return column_type.dialect_impl(dialect).bind_processor(dialect) or (lambda value: value)


class Records:
    """The records of one domain, each operation in a transaction of its own."""

    def __init__(self, store: Store, domain: str):
        if not domain:
            raise ValueError("records need a domain")
        self.store = store
        self.domain = domain

    def get(self, key: str, default: Any = None) -> Any:
        with self.store.read_connection() as c:  # no Session: a bare read of one row
            return get(c, self.domain, key, default)

    def put(self, key: str, value: Any) -> None:
        with self.store.write() as s:
            put(s, self.domain, key, value, lock=True)

    def put_many(self, items: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        """Write many records in one transaction (one upsert statement per batch)."""
        values = dict(items)
        if values:
            with self.store.write() as s:
                put_many(s, self.domain, values)

    def update(self, key: str, change: Callable[[Any], Any]) -> Any:
        """Atomically read, change and write one record; ``change`` returning None deletes it."""
        from upkeep.store.models import Record

        with self.store.write() as s:
            row = s.get(Record, (self.domain, key), with_for_update=self.store.is_postgres)
            new = change(row.value if row is not None else None)
            if new is None:
                if row is not None:
                    s.delete(row)
            else:
                put(s, self.domain, key, new, lock=True)
            return new

    def delete(self, key: str) -> bool:
        with self.store.write() as s:
            return delete(s, self.domain, key)

    def items(self, prefix: str = "", limit: int | None = None) -> list[tuple[str, Any]]:
        """Records whose key starts with ``prefix``, ordered by key."""
        with self.store.read_connection() as s:
            return items(s, self.domain, prefix, limit)

    def keys(self, prefix: str = "") -> list[str]:
        return [k for k, _ in self.items(prefix)]

    def delete_prefix(self, prefix: str) -> int:
        with self.store.write() as s:
            return s.execute(_prefixed(sa.delete(RECORDS).where(RECORDS.c.domain == self.domain), prefix)).rowcount


def load_targets(store: Store) -> dict[str, Any]:
    """The targets inventory ``upkeep apply`` recorded."""
    return Records(store, CONFIG_DOMAIN).get("targets", {}) or {}


def instance_secrets(store: Store) -> list[str]:
    """The values of every ``${env:NAME}`` the config file references (``apply`` records the names),
    set in this process's environment: a run or an alert scrubs them all, not only those it
    resolved (a command may print a database password the task itself never referenced)."""
    names = Records(store, CONFIG_DOMAIN).get("secret_names", []) or []
    return [os.environ[name] for name in names if os.environ.get(name)]

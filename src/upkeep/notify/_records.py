"""Records read and written inside a caller's transaction (the alerter keeps its cursor, outbox and
history there, committed together with the alert state it changes)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from upkeep.store.models import Record


def get(s: Session, domain: str, key: str, default: Any = None, *, lock: bool = False) -> Any:
    query = sa.select(Record.value).where(Record.domain == domain, Record.key == key)
    if lock and s.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    value = s.execute(query).scalar()
    return default if value is None else value


def put(s: Session, domain: str, key: str, value: Any) -> None:
    now = datetime.now(UTC)
    row = s.get(Record, (domain, key))
    if row is None:
        s.add(Record(domain=domain, key=key, value=value, created_at=now, updated_at=now))
    else:
        row.value = value
        row.updated_at = now
    s.flush()


def delete(s: Session, domain: str, key: str) -> bool:
    return s.execute(sa.delete(Record).where(Record.domain == domain, Record.key == key)).rowcount > 0


def items(s: Session, domain: str, prefix: str = "", limit: int | None = None) -> list[tuple[str, Any]]:
    query = sa.select(Record.key, Record.value).where(Record.domain == domain)
    if prefix:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Record.key.like(f"{escaped}%", escape="\\"))
    query = query.order_by(Record.key)
    if limit is not None:
        query = query.limit(limit)
    return [(k, v) for k, v in s.execute(query)]


def get_many(s: Session, domain: str, keys: list[str]) -> dict[str, Any]:
    """The values of ``keys`` that exist (one query per 500 keys)."""
    out: dict[str, Any] = {}
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        query = sa.select(Record.key, Record.value).where(Record.domain == domain, Record.key.in_(chunk))
        if s.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        out.update(dict(s.execute(query).all()))
    return out


def put_many(s: Session, domain: str, values: dict[str, Any]) -> None:
    """Insert or replace many records with one statement per 500 (an upsert on both dialects)."""
    if not values:
        return
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    now = datetime.now(UTC)
    table = Record.__table__
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["domain", "key"],
        set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
    )
    rows = [{"domain": domain, "key": k, "value": v, "created_at": now, "updated_at": now} for k, v in values.items()]
    s.connection().execute(stmt, rows)  # executemany: compiled once, batched by the driver

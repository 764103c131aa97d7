"""The records API: small per-domain keyed JSON records that handlers keep between runs.

Examples: the backup catalog (``backup``), health failure counters (``health``), rotation state
(``logs.rotate``), capacity samples (``capacity``). Handlers reach it as ``ctx.records(domain)`` and
never touch SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from upkeep.store.db import Store
from upkeep.store.models import Record


class Records:
    def __init__(self, store: Store, domain: str):
        if not domain:
            raise ValueError("records need a domain")
        self.store = store
        self.domain = domain

    def get(self, key: str, default: Any = None) -> Any:
        table = Record.__table__
        query = sa.select(table.c.value).where(table.c.domain == self.domain, table.c.key == key)
        with self.store.read() as s:
            row = s.execute(query).first()
            return row[0] if row is not None else default

    def put(self, key: str, value: Any) -> None:
        with self.store.write() as s:
            self._put(s, key, value)

    def _put(self, session, key: str, value: Any) -> None:
        now = datetime.now(UTC)
        row = session.get(Record, (self.domain, key), with_for_update=self.store.is_postgres)
        if row is None:
            session.add(Record(domain=self.domain, key=key, value=value, created_at=now, updated_at=now))
        else:
            row.value = value
            row.updated_at = now

    def put_many(self, items: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        """Write many records in one transaction (one upsert statement per batch)."""
        pairs = list(dict(items).items())
        if not pairs:
            return
        now = datetime.now(UTC)
        rows = [{"domain": self.domain, "key": k, "value": v, "created_at": now, "updated_at": now} for k, v in pairs]
        if self.store.is_postgres:
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        with self.store.write() as s:
            for start in range(0, len(rows), 500):
                stmt = insert(Record).values(rows[start : start + 500])
                stmt = stmt.on_conflict_do_update(
                    index_elements=[Record.domain, Record.key],
                    set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
                )
                s.execute(stmt)

    def update(self, key: str, change: Callable[[Any], Any]) -> Any:
        """Atomically read, change and write one record; ``change`` returning None deletes it."""
        with self.store.write() as s:
            row = s.get(Record, (self.domain, key), with_for_update=self.store.is_postgres)
            new = change(row.value if row is not None else None)
            if new is None:
                if row is not None:
                    s.delete(row)
            else:
                self._put(s, key, new)
            return new

    def delete(self, key: str) -> bool:
        with self.store.write() as s:
            result = s.execute(sa.delete(Record).where(Record.domain == self.domain, Record.key == key))
            return result.rowcount > 0

    def items(self, prefix: str = "", limit: int | None = None) -> list[tuple[str, Any]]:
        """Records whose key starts with ``prefix``, ordered by key."""
        query = sa.select(Record.key, Record.value).where(Record.domain == self.domain)
        if prefix:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(Record.key.like(f"{escaped}%", escape="\\"))
        query = query.order_by(Record.key)
        if limit is not None:
            query = query.limit(limit)
        with self.store.read() as s:
            return [(k, v) for k, v in s.execute(query)]

    def keys(self, prefix: str = "") -> list[str]:
        return [k for k, _ in self.items(prefix)]

    def delete_prefix(self, prefix: str) -> int:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self.store.write() as s:
            result = s.execute(
                sa.delete(Record).where(Record.domain == self.domain, Record.key.like(f"{escaped}%", escape="\\"))
            )
            return result.rowcount

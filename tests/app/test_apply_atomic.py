"""``upkeep apply`` reconciles in one transaction: a store failure half-way leaves nothing applied."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from upkeep.app.config import apply_file
from upkeep.config_file import settings_for
from upkeep.store.models import Base

FIRST = """
tasks:
  - {name: nightly, type: debug.noop, schedule: "0 3 * * *"}
  - {name: weekly, type: debug.noop, schedule: "0 4 * * 0"}
"""

# creates two tasks, updates one, deletes one (--prune), adds a target, a heartbeat and a silence
SECOND = """
targets:
  services:
    api: {type: http, url: "http://127.0.0.1:9/health"}
tasks:
  - {name: nightly, type: debug.noop, schedule: "0 5 * * *", description: moved}
  - {name: hourly, type: debug.noop, schedule: "0 * * * *"}
  - {name: nap, type: debug.sleep, config: {seconds: 1}}
heartbeats:
  - {name: offsite-sync, schedule: "@every 6h", grace: 60m}
silences:
  - match: {task: hourly}
    windows: ["Sun 02:00-04:00 UTC"]
    reason: the hourly task's window
"""


def _dump(store) -> dict:
    with store.engine.connect() as conn:
        return {
            t.name: sorted(map(tuple, conn.execute(sa.select(t)).all()), key=repr) for t in Base.metadata.sorted_tables
        }


@pytest.fixture
def apply(tmp_path, sqlite_store):
    path = tmp_path / "upkeep.yaml"
    settings = settings_for(path, sqlite_store.url, environ={})

    def run(text: str, **kw):
        path.write_text(text)
        return apply_file(settings, sqlite_store, actor="test", prune=True, dry_run=False, echo=lambda _: None, **kw)

    return run


def _fail_at(store, table: str) -> list[str]:
    """Make the store fail at the first INSERT into ``table``; returns the writes made before it."""
    written: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        verb = statement.lstrip().split(" ", 1)[0].upper()
        if verb in ("INSERT", "UPDATE", "DELETE"):
            if verb == "INSERT" and f"INTO {table} " in statement:
                raise sa.exc.OperationalError(statement, parameters, OSError("disk I/O error"))
            written.append(statement)

    event.listen(store.engine, "before_cursor_execute", before)
    return written


@pytest.mark.parametrize("table", ["heartbeats", "silences", "records"])
def test_a_store_failure_half_way_through_apply_leaves_nothing_applied(apply, sqlite_store, table):
    apply(FIRST)
    before = _dump(sqlite_store)
    written = _fail_at(sqlite_store, table)

    with pytest.raises(sa.exc.OperationalError, match="disk I/O error"):
        apply(SECOND)

    assert any("scheduled_tasks" in statement for statement in written)  # tasks were written before it failed
    assert _dump(sqlite_store) == before


def test_the_same_apply_without_the_failure_writes_it_all(apply, sqlite_store):
    apply(FIRST)
    diff = apply(SECOND)
    assert (len(diff.create), len(diff.update), len(diff.delete)) == (2, 1, 1)
    with sqlite_store.read() as s:
        tasks = sorted(s.execute(sa.text("SELECT name FROM scheduled_tasks")).scalars())
        silences = s.execute(sa.text("SELECT count(*) FROM silences")).scalar_one()
        heartbeats = s.execute(sa.text("SELECT count(*) FROM heartbeats")).scalar_one()
        applied = s.execute(sa.text("SELECT count(*) FROM audit_log WHERE action = 'apply'")).scalar_one()
    assert tasks == ["hourly", "nap", "nightly"]
    assert (silences, heartbeats, applied) == (1, 1, 2)

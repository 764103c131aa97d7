"""The alerts migration on both stores: the schema it makes is the models', and the silences made
before it keep their meaning (a task, a heartbeat monitor, a channel) and their end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from upkeep.app.alerts import list_silences
from upkeep.store.db import Store
from upkeep.store.models import Base


def test_the_migration_makes_the_models_schema(store: Store):
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_silences_made_before_the_migration_keep_their_meaning(kind, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'old.db'}" if kind == "sqlite" else request.getfixturevalue("pg_database")
    store = Store(url)
    store.upgrade("0003_issue19a")
    until = datetime.now(UTC) + timedelta(hours=2)
    rows = [
        {"task_name": "nightly", "channel": None},
        {"task_name": "heartbeat/offsite", "channel": None},
        {"task_name": None, "channel": "email"},
        {"task_name": "nightly", "channel": "hook"},
    ]
    with store.write() as s:
        for row in rows:
            s.execute(
                sa.text(
                    "INSERT INTO silences (task_name, channel, until, reason, created_by, created_at) "
                    "VALUES (:task_name, :channel, :until, 'old', 'cli:ops', :now)"
                ),
                {**row, "until": until.replace(tzinfo=None) if kind == "sqlite" else until, "now": until},
            )
    store.upgrade()
    silences = sorted(list_silences(store), key=lambda v: v["id"])
    assert [v["match"] for v in silences] == [
        {"task": "nightly"},
        {"heartbeat": "offsite"},
        {"channel": "email"},
        {"task": "nightly", "channel": "hook"},
    ]
    assert {(v["windows"] == [], v["managed_by"], v["reason"]) for v in silences} == {(True, "api", "old")}
    assert {datetime.fromisoformat(v["until"]) for v in silences} == {until}
    store.dispose()

"""The store, the records API, the handler registry and RunContext basics, on both stores."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import Field

from support.contexts import events_of, make_context
from upkeep.engine.context import CommandFailed, DeadlineExceeded, RunCancelled
from upkeep.engine.registry import HandlerConfig, Registry, handler, overridable
from upkeep.errors import ConfigError, UserError
from upkeep.store.db import Store, migration_heads
from upkeep.store.records import Records


def test_migrations_reach_head(store: Store):
    assert store.current_revision() == store.head_revision()
    store.upgrade()  # idempotent
    assert store.is_up_to_date()


def test_a_current_schema_is_recognised_without_alembic_and_an_old_one_is_not(store: Store, tmp_path):
    assert migration_heads() == {store.head_revision()}
    assert store.at_head()
    if store.is_sqlite:  # a command on a current store neither imports Alembic nor runs it
        script = (
            "import sys; from upkeep.store.db import Store; "
            f"s = Store({store.url!r}); s.upgrade(); assert s.is_up_to_date(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))"
        )
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
        assert proc.stdout.strip() == "[]"
    with store.write_connection() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0002'")
    assert not store.at_head()
    assert not store.is_up_to_date()
    with store.write_connection() as conn:
        conn.exec_driver_sql("DROP TABLE alembic_version")
    assert not store.at_head()
    assert Store(f"sqlite:///{tmp_path / 'new.db'}").at_head() is False


def test_records_round_trip_prefix_and_atomic_update(store: Store):
    backups = Records(store, "backup")
    backups.put("main/2026-01-01", {"size": 1})
    backups.put("main/2026-01-02", {"size": 2})
    backups.put("other/2026-01-01", {"size": 3})
    Records(store, "health").put("main/2026-01-01", {"fails": 9})
    assert backups.get("main/2026-01-02") == {"size": 2}
    assert backups.keys("main/") == ["main/2026-01-01", "main/2026-01-02"]
    assert backups.get("missing", {"x": 1}) == {"x": 1}
    assert backups.update("counter", lambda v: {"n": (v or {"n": 0})["n"] + 1}) == {"n": 1}
    assert backups.update("counter", lambda v: {"n": v["n"] + 1}) == {"n": 2}
    assert backups.update("counter", lambda v: None) is None
    assert backups.get("counter") is None
    assert backups.delete("other/2026-01-01") is True
    assert backups.delete("other/2026-01-01") is False
    assert backups.keys() == ["main/2026-01-01", "main/2026-01-02"]
    assert Records(store, "health").keys() == ["main/2026-01-01"]


def test_like_wildcards_in_prefix_are_literal(store: Store):
    r = Records(store, "x")
    r.put("a_b", {})
    r.put("axb", {})
    assert r.keys("a_") == ["a_b"]


def test_unreachable_database_is_one_clear_error():
    store = Store("postgresql+psycopg://nobody:secret@127.0.0.1:1/nowhere")
    with pytest.raises(UserError) as info:
        store.check_connection()
    text = str(info.value)
    assert "cannot connect to the database" in text
    assert "secret" not in text


class SampleConfig(HandlerConfig):
    retention_days: int = Field(30, ge=1, description="Keep this many days")
    batch_size: int = overridable(1000, ge=1)


def test_registry_names_aliases_overrides_and_validation():
    reg = Registry()
    reg._loaded = True

    @handler("sample.cleanup", config=SampleConfig, aliases=["gc.sample"], registry=reg)
    def cleanup(ctx, config):
        """Delete old things."""
        return {"deleted": 0}

    spec, alias = reg.resolve("gc.sample")
    assert spec.name == "sample.cleanup" and alias == "gc.sample"
    assert spec.summary == "Delete old things."
    assert spec.overridable_fields() == {"batch_size"}
    assert spec.defaults() == {"retention_days": 30, "batch_size": 1000}
    with pytest.raises(ConfigError, match=r"config.retention_days"):
        spec.validate_config({"retention_days": "soon"})
    with pytest.raises(ConfigError, match=r"config.colour: unknown field"):
        spec.validate_config({"colour": 1})
    with pytest.raises(ConfigError, match="never pre-approved"):
        spec.validate_config({"confirm": True})
    assert spec.validate_config({"dry_run": True, "batch_size": 5}).batch_size == 5
    spec.check_overrides({"batch_size": 2, "dry_run": True})
    with pytest.raises(ConfigError, match="does not allow a run to override retention_days"):
        spec.check_overrides({"retention_days": 1})
    with pytest.raises(UserError, match="unknown task type 'sample.nope'"):
        reg.resolve("sample.nope")
    with pytest.raises(ValueError, match="domain.action"):
        handler("NoDot", registry=reg)(lambda ctx, c: {})
    assert spec.json_schema()["properties"]["batch_size"]["x-overridable"] is True


def test_context_events_progress_secrets_and_cancel(store: Store, monkeypatch):
    ctx = make_context(store, "sample.cleanup")
    ctx.secrets.append("hunter2-secret")
    ctx.info("start", "connecting with hunter2-secret", url="postgresql://u:pw@h/db")
    ctx.warning("slow", "took long", seconds=3)
    ctx.progress(1.5, "done")
    events = events_of(store, ctx.run_id)
    assert [e["seq"] for e in events] == [1, 2]
    assert events[0]["message"] == "connecting with ***"
    assert events[0]["data"] == {"url": "postgresql://u:***@h/db"}
    assert events[1]["level"] == "warning"
    ctx.check_cancelled()
    ctx.cancel_event.set()
    with pytest.raises(RunCancelled):
        ctx.check_cancelled()


def test_run_command_checks_exit_code_and_kills_tree_at_deadline(sqlite_store):
    from datetime import timedelta

    ctx = make_context(sqlite_store)
    assert ctx.run_command(["sh", "-c", "echo hi"]).stdout == "hi\n"
    with pytest.raises(CommandFailed, match="exited with 3"):
        ctx.run_command(["sh", "-c", "echo boom >&2; exit 3"])
    with pytest.raises(CommandFailed, match="cannot run"):
        ctx.run_command(["/nonexistent/binary"])
    ctx.deadline = ctx.now() + timedelta(seconds=0.5)
    with pytest.raises(DeadlineExceeded):
        ctx.run_command(["sh", "-c", "sleep 30 & sleep 30; wait"])


def test_recovery_never_kills_its_own_process_group_or_init():
    import os

    from upkeep.engine.context import kill_process_group

    assert kill_process_group(os.getpgid(0)) == 0
    assert kill_process_group(1) == 0
    assert kill_process_group(0) == 0


def test_sqlite_write_transactions_wait_themselves_and_reads_keep_sqlites_busy_timeout(tmp_path):
    from sqlalchemy import event

    store = Store(f"sqlite:///{tmp_path / 'locks.db'}", pool_size=1)
    statements: list[str] = []
    event.listen(store.engine, "connect", lambda dbapi, _record: dbapi.set_trace_callback(statements.append))
    try:

        def busy_timeout(conn) -> int:
            return conn.exec_driver_sql("PRAGMA busy_timeout").scalar()

        for _ in range(3):
            with store.write_connection() as c:
                assert busy_timeout(c) == 0  # _sqlite_begin retries BEGIN IMMEDIATE itself
        with store.read_connection() as c:
            assert busy_timeout(c) == 30000  # a reader waits out a checkpoint or a WAL recovery
        with store.write_connection() as c:
            assert busy_timeout(c) == 0
        # one connection served all five (traced from after its connect set 30000): its busy timeout
        # changed only when the kind of transaction did
        assert statements.count("BEGIN IMMEDIATE") == 4
        changes = [s.removeprefix("PRAGMA busy_timeout=") for s in statements if s.startswith("PRAGMA busy_timeout=")]
        assert changes == ["0", "30000", "0"]
    finally:
        store.dispose()

"""backup.create / verify / restore against a real PostgreSQL cluster with pgbench writing."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from support.contexts import events_of, run_handler
from support.servers import free_port
from upkeep.errors import ConnectionFailed, UserError
from upkeep.handlers.backup.sources.postgres_tools import (
    PgTarget,
    Table,
    checksum_query,
    list_tables,
    wait_for_drops,
)

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pgbench_db(pg_server):
    name = pg_server.create_database()
    subprocess.run(
        [pg_server.bin("pgbench"), "-i", "-s", "10", "-q", "-d", pg_server.dsn(name)], check=True, capture_output=True
    )
    yield name
    pg_server.drop_database(name)


def _sha_and_mtime(path: Path) -> tuple[str, int]:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def _scratch_databases(pg_server, store) -> int:
    """Scratch databases of this test's backups (those in ``store``'s catalog) on the server, once
    the drops this process sent are done. Only this test's: the session's server is shared with
    tests that verify in a worker process, whose drops this process cannot wait for."""
    from upkeep.handlers.backup import catalog
    from upkeep.handlers.backup.sources.postgres import scratch_name
    from upkeep.store.records import Records

    wait_for_drops(60)
    names = [scratch_name(e["id"]) for e in catalog.entries(Records(store, catalog.DOMAIN))]
    if not names:
        return 0
    listed = ", ".join(f"'{n}'" for n in names)
    return int(pg_server.psql(f"select count(*) from pg_database where datname in ({listed})"))


def _checksums(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {t.key: conn.execute(checksum_query(t)).fetchone()[0] for t in list_tables(conn)}


def _scalar(dsn: str, query: str):
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query).fetchone()[0]


def _items_database(pg_server, rows: int, value_sql: str) -> str:
    """A new database with table ``items(id, v)`` of ``rows`` rows, ``v`` computed from ``g`` (the id)."""
    name = pg_server.create_database()
    pg_server.psql(
        f"create table items(id int primary key, v text); "
        f"insert into items select g, {value_sql} from generate_series(1, {rows}) g",
        name,
    )
    return name


def test_round_trip_under_pgbench_load_detects_corruption_and_restores_the_snapshot(
    pg_server, pgbench_db, sqlite_store, tmp_path
):
    dsn = pg_server.dsn(pgbench_db)
    source = {"type": "postgres", "url": dsn, "name": "bench"}
    dest = tmp_path / "backups"
    load = subprocess.Popen(
        [pg_server.bin("pgbench"), "-n", "-c", "2", "-T", "60", "-d", dsn],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while _scalar(dsn, "select count(*) from pgbench_history") < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        created = run_handler(
            sqlite_store,
            "backup.create",
            {"source": source, "destination": str(dest), "table_checksums": True},
            data_dir=tmp_path,
        )
        history_in_dump = created["row_counts"]["public.pgbench_history"]
        time.sleep(0.3)
        assert _scalar(dsn, "select count(*) from pgbench_history") > history_in_dump  # pgbench kept writing
    finally:
        load.terminate()
        load.wait()
    assert history_in_dump > 0
    artifact = Path(created["path"])
    assert artifact.parent == dest / "bench" and artifact.name.endswith(".dump.zst")
    assert not [p for p in dest.rglob("*") if ".partial" in p.name or ".upkeep-work" in p.name]

    before = _sha_and_mtime(artifact)
    verified = run_handler(sqlite_store, "backup.verify", {"source": source}, data_dir=tmp_path)
    assert verified["outcome"] == "ok", verified["summary"]
    checks = {c["check"]: c for c in verified["backups"][0]["checks"]}
    assert checks["test_restore"]["ok"] and checks["row_counts"]["ok"] and checks["table_checksums"]["ok"]
    assert _sha_and_mtime(artifact) == before  # verification never modifies the backup
    assert _scratch_databases(pg_server, sqlite_store) == 0

    good = tmp_path / "good.copy"
    shutil.copy2(artifact, good)
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0x01
    artifact.write_bytes(bytes(data))
    flipped = run_handler(
        sqlite_store, "backup.verify", {"source": source, "which": created["backup_id"]}, data_dir=tmp_path
    )
    assert flipped["outcome"] == "critical"
    assert "checksum mismatch: expected" in flipped["summary"]
    from upkeep.handlers.backup import catalog
    from upkeep.store.records import Records

    records = Records(sqlite_store, "backup")
    assert catalog.find(records, created["backup_id"])["status"] == "broken"

    shutil.copy2(good, artifact)
    with open(artifact, "r+b") as fh:
        fh.truncate(artifact.stat().st_size // 2)
    truncated = run_handler(
        sqlite_store, "backup.verify", {"source": source, "which": created["backup_id"]}, data_dir=tmp_path
    )
    assert truncated["outcome"] == "critical"
    assert "size" in truncated["summary"] and "checksum mismatch" in truncated["summary"]

    shutil.copy2(good, artifact)
    with pytest.raises(UserError, match="needs confirmation"):
        run_handler(
            sqlite_store,
            "backup.restore",
            {
                "source": source,
                "backup": created["backup_id"],
                "allow_unverified": True,
                "target_database": "restored_new",
                "create": True,
            },
            data_dir=tmp_path,
        )
    restored = run_handler(
        sqlite_store,
        "backup.restore",
        {
            "source": source,
            "backup": created["backup_id"],
            "allow_unverified": True,
            "target_database": "restored_new",
            "create": True,
        },
        data_dir=tmp_path,
        confirm=True,
    )
    try:
        assert restored["outcome"] == "ok", restored["summary"]
        new_dsn = pg_server.dsn("restored_new")
        manifest = catalog.find(records, created["backup_id"])["manifest"]
        with psycopg.connect(new_dsn, autocommit=True) as conn:
            counts = {t.key: conn.execute(f"select count(*) from {t.key}").fetchone()[0] for t in list_tables(conn)}
        assert counts == manifest["row_counts"]
        assert _checksums(new_dsn) == manifest["table_checksums"]
        # the live database moved on; the restored one is the dump's snapshot
        assert _scalar(dsn, "select count(*) from pgbench_history") > counts["public.pgbench_history"]
        # pgbench's invariant holds only in a consistent snapshot: every delta is in the history
        sums = _scalar(
            new_dsn,
            "select array[(select sum(abalance) from pgbench_accounts), "
            "(select sum(delta) from pgbench_history), "
            "(select sum(bbalance) from pgbench_branches)]",
        )
        assert sums[0] == sums[1] == sums[2]
    finally:
        pg_server.drop_database("restored_new")


def test_verify_decodes_into_pg_restore_and_reports_a_stream_that_fails_to_decode(pg_server, sqlite_store, tmp_path):
    """The decoded dump goes to pg_restore through a pipe, not a scratch copy; an artifact whose
    checksum matches but whose zstd stream is cut short (as if written wrong) fails as undecodable."""
    import hashlib

    from upkeep.handlers.backup import catalog
    from upkeep.store.records import Records

    name = _items_database(pg_server, 20000, "md5(g::text) || repeat('x', 200)")
    source = {"type": "postgres", "url": pg_server.dsn(name), "name": "streamed"}
    made = run_handler(
        sqlite_store, "backup.create", {"source": source, "destination": str(tmp_path / "b")}, data_dir=tmp_path
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    config = {"source": source, "scratch_dir": str(scratch)}
    verified = run_handler(sqlite_store, "backup.verify", config, data_dir=tmp_path)
    assert verified["outcome"] == "ok", verified["summary"]
    checks = {c["check"]: c for c in verified["backups"][0]["checks"]}
    assert checks["toc"]["ok"] and checks["test_restore"]["ok"] and checks["row_counts"]["ok"]

    artifact = Path(made["path"])
    cut = artifact.read_bytes()[: artifact.stat().st_size // 2]
    artifact.write_bytes(cut)
    records = Records(sqlite_store, "backup")
    entry = catalog.find(records, made["backup_id"])
    entry["manifest"].update(sha256=hashlib.sha256(cut).hexdigest(), size=len(cut))
    catalog.put(records, entry)
    broken = run_handler(sqlite_store, "backup.verify", config, data_dir=tmp_path)
    assert broken["outcome"] == "critical"
    checks = {c["check"]: c for c in broken["backups"][0]["checks"]}
    assert checks["checksum"]["ok"] and checks["toc"]["ok"]
    assert not checks["decode"]["ok"] and "truncated" in checks["decode"]["message"]
    assert "test_restore" not in checks
    assert _scratch_databases(pg_server, sqlite_store) == 0
    assert list(scratch.iterdir()) == []
    pg_server.drop_database(name)


def test_a_restore_that_loses_rows_fails_on_the_counts_of_the_restored_database(pg_server, sqlite_store, tmp_path):
    """A dump whose data lost a row (its checksum made to match, as if pg_dump had written it so)
    restores without an error; the row counts, taken from the restored database, fail it."""
    import hashlib

    import zstandard

    from upkeep.handlers.backup import catalog
    from upkeep.handlers.backup.stream import DecodedStream
    from upkeep.store.records import Records

    name = _items_database(pg_server, 3000, "'v' || g")
    source = {"type": "postgres", "url": pg_server.dsn(name), "name": "lossy"}
    made = run_handler(
        sqlite_store, "backup.create", {"source": source, "destination": str(tmp_path / "b")}, data_dir=tmp_path
    )
    artifact = Path(made["path"])
    raw = b"".join(DecodedStream(artifact, "zstd").chunks())
    row = b"1500\tv1500\n"  # one archive block per row in an uncompressed dump: length, then the row
    block = b"\x00" + len(row).to_bytes(4, "little") + row
    assert raw.count(block) == 1
    lossy = zstandard.ZstdCompressor().compress(raw.replace(block, b""))
    artifact.write_bytes(lossy)
    records = Records(sqlite_store, "backup")
    entry = catalog.find(records, made["backup_id"])
    entry["manifest"].update(sha256=hashlib.sha256(lossy).hexdigest(), size=len(lossy))
    catalog.put(records, entry)

    verified = run_handler(sqlite_store, "backup.verify", {"source": source}, data_dir=tmp_path)
    assert verified["outcome"] == "critical"
    checks = {c["check"]: c for c in verified["backups"][0]["checks"]}
    assert checks["checksum"]["ok"] and checks["test_restore"]["ok"]
    assert not checks["row_counts"]["ok"]
    assert "public.items: expected 3000, got 2999" in checks["row_counts"]["message"]
    assert _scratch_databases(pg_server, sqlite_store) == 0
    pg_server.drop_database(name)


def test_the_test_restore_session_sorts_with_restore_memory_mb(pg_server, sqlite_store, tmp_path):
    """The scratch restore's session has maintenance_work_mem = restore_memory_mb: a table whose CHECK
    reads the setting restores (and verifies) only when the two agree."""
    name = pg_server.create_database()
    pg_server.psql(
        "set maintenance_work_mem = '100MB'; "
        "create table t(id int primary key check (current_setting('maintenance_work_mem') = '100MB')); "
        "insert into t select generate_series(1, 50)",
        name,
    )
    source = {"type": "postgres", "url": pg_server.dsn(name), "name": "sorting"}
    run_handler(
        sqlite_store, "backup.create", {"source": source, "destination": str(tmp_path / "b")}, data_dir=tmp_path
    )

    default = run_handler(sqlite_store, "backup.verify", {"source": source}, data_dir=tmp_path)
    checks = {c["check"]: c for c in default["backups"][0]["checks"]}
    assert not checks["test_restore"]["ok"] and "Failing row contains (1)" in checks["test_restore"]["message"]
    configured = run_handler(
        sqlite_store, "backup.verify", {"source": source, "restore_memory_mb": 100}, data_dir=tmp_path
    )
    assert configured["outcome"] == "ok", configured["summary"]
    assert _scratch_databases(pg_server, sqlite_store) == 0  # before the source goes: the drops' sessions are on it
    pg_server.drop_database(name)


def test_a_scratch_database_an_earlier_verification_left_is_dropped_and_reported(pg_server, sqlite_store, tmp_path):
    """The scratch database is dropped after the checks without the verification waiting for it; one
    still there at the next test restore of the backup (its drop cut off) is dropped first, with a
    warning, and the verification passes."""
    from upkeep.handlers.backup.sources.postgres import scratch_name

    name = _items_database(pg_server, 100, "'v' || g")
    source = {"type": "postgres", "url": pg_server.dsn(name), "name": "left"}
    made = run_handler(
        sqlite_store, "backup.create", {"source": source, "destination": str(tmp_path / "b")}, data_dir=tmp_path
    )
    first = run_handler(sqlite_store, "backup.verify", {"source": source}, data_dir=tmp_path)
    assert first["outcome"] == "ok", first["summary"]
    assert not [e for e in events_of(sqlite_store, first["_run_id"]) if e["event"] == "scratch_leftover"]
    assert _scratch_databases(pg_server, sqlite_store) == 0

    scratch = scratch_name(made["backup_id"])
    pg_server.create_database(scratch)
    pg_server.psql("create table stale(id int)", scratch)
    second = run_handler(sqlite_store, "backup.verify", {"source": source}, data_dir=tmp_path)
    assert second["outcome"] == "ok", second["summary"]
    [warned] = [e for e in events_of(sqlite_store, second["_run_id"]) if e["event"] == "scratch_leftover"]
    assert warned["level"] == "warning" and scratch in warned["message"]
    assert _scratch_databases(pg_server, sqlite_store) == 0
    pg_server.drop_database(name)


def test_the_server_finishes_a_scratch_drop_whose_sender_exited_at_once(pg_server):
    """``drop_database_later`` returns with the statement on the server: a process that exits right
    after it (``upkeep run``'s worker, ended once the run reported) still has the database dropped."""
    import sys

    name = _items_database(pg_server, 50000, "repeat('x', 100)")
    script = (
        "import os, sys\n"
        "from upkeep.handlers.backup.sources.postgres_tools import PgTarget, connect, drop_database_later\n"
        "drop_database_later(connect(PgTarget.from_spec({'url': sys.argv[1]})), sys.argv[2])\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, pg_server.dsn(), name], check=True)
    exists = f"select count(*) from pg_database where datname = '{name}'"
    deadline = time.monotonic() + 60
    while pg_server.psql(exists) != "0" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pg_server.psql(exists) == "0"


def test_an_encrypted_dump_is_decrypted_into_pg_restore_and_verifies(pg_server, sqlite_store, tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUP_KEY", "11" * 32)
    name = pg_server.create_database()
    pg_server.psql("create table t(id int primary key); insert into t select generate_series(1, 3000)", name)
    source = {"type": "postgres", "url": pg_server.dsn(name), "name": "sealed"}
    made = run_handler(
        sqlite_store,
        "backup.create",
        {"source": source, "destination": str(tmp_path / "b"), "encrypt": True, "encryption_key_env": "BACKUP_KEY"},
        data_dir=tmp_path,
    )
    assert b"COPY public.t" not in Path(made["path"]).read_bytes()
    verified = run_handler(sqlite_store, "backup.verify", {"source": source}, data_dir=tmp_path)
    assert verified["outcome"] == "ok", verified["summary"]
    checks = {c["check"]: c for c in verified["backups"][0]["checks"]}
    assert checks["test_restore"]["ok"] and checks["row_counts"]["ok"]
    pg_server.drop_database(name)


def test_restore_into_the_original_database_takes_a_safety_backup_and_ends_sessions(pg_server, sqlite_store, tmp_path):
    name = _items_database(pg_server, 500, "'v' || g")
    target = {"type": "postgres", "url": pg_server.dsn(name), "name": "small"}
    cfg = {"source": target, "destination": str(tmp_path / "b")}
    made = run_handler(sqlite_store, "backup.create", cfg, data_dir=tmp_path)
    assert run_handler(sqlite_store, "backup.verify", {"source": target}, data_dir=tmp_path)["outcome"] == "ok"
    pg_server.psql("insert into items values (1000, 'after the backup')", name)
    marker = tmp_path / "events.txt"
    restore_cfg = {
        "source": target,
        "stop_command": ["sh", "-c", f"echo stop >> {marker}"],
        "start_command": ["sh", "-c", f"echo start >> {marker}"],
    }

    plan = run_handler(sqlite_store, "backup.restore", restore_cfg, data_dir=tmp_path, dry_run=True)
    assert plan["dry_run"] and plan["plan"]["backup_id"] == made["backup_id"] and plan["plan"]["drops"] == name
    assert any("safety backup" in s for s in plan["plan"]["steps"])
    assert pg_server.psql("select count(*) from items", name) == "501" and not marker.exists()

    session = psycopg.connect(pg_server.dsn(name), autocommit=True)
    try:
        result = run_handler(sqlite_store, "backup.restore", restore_cfg, data_dir=tmp_path, confirm=True)
        assert result["outcome"] == "ok", result["summary"]
        with pytest.raises(psycopg.OperationalError):
            session.execute("select 1")
    finally:
        session.close()
    assert pg_server.psql("select count(*) from items", name) == "500"
    assert marker.read_text().split() == ["stop", "start"]
    from upkeep.handlers.backup import catalog
    from upkeep.store.records import Records

    safety = catalog.find(Records(sqlite_store, "backup"), result["safety_backup"])
    assert safety["source"] == "small-safety" and safety["manifest"]["row_counts"] == {"public.items": 501}
    assert any(e["event"] == "terminated" for e in events_of(sqlite_store, result["_run_id"]))
    pg_server.drop_database(name)


def test_latest_restore_refuses_when_no_backup_is_verified(pg_server, sqlite_store, tmp_path):
    name = pg_server.create_database()
    target = {"type": "postgres", "url": pg_server.dsn(name), "name": "unverified"}
    run_handler(sqlite_store, "backup.create", {"source": target, "destination": str(tmp_path)}, data_dir=tmp_path)
    with pytest.raises(UserError, match="no verified backup"):
        run_handler(sqlite_store, "backup.restore", {"source": target}, data_dir=tmp_path, confirm=True)
    pg_server.drop_database(name)


def _leftovers(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []


def test_unreachable_server_is_one_clear_error_and_leaves_nothing(sqlite_store, tmp_path):
    source = {"type": "postgres", "url": f"postgresql://postgres:s3cret-pw@127.0.0.1:{free_port()}/app"}
    with pytest.raises(ConnectionFailed) as err:
        run_handler(
            sqlite_store, "backup.create", {"source": source, "destination": str(tmp_path / "d")}, data_dir=tmp_path
        )
    assert "127.0.0.1" in str(err.value) and "s3cret-pw" not in str(err.value)
    assert _leftovers(tmp_path / "d") == []


def test_missing_pg_dump_is_one_clear_error(pg_server, sqlite_store, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    with pytest.raises(UserError, match="pg_dump not found in pg_bin_dir"):
        run_handler(
            sqlite_store,
            "backup.create",
            {"source": {"url": pg_server.dsn()}, "pg_bin_dir": str(empty), "destination": str(tmp_path / "d")},
            data_dir=tmp_path,
        )
    assert _leftovers(tmp_path / "d") == []


def test_pg_dump_older_than_the_server_is_refused_before_dumping(pg_server, sqlite_store, tmp_path):
    fake = tmp_path / "bin" / "pg_dump"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'pg_dump (PostgreSQL) 12.0'; exit 0; fi\n"
        "echo dumped > /dev/stdout\n"
    )
    fake.chmod(0o755)
    with pytest.raises(UserError) as err:
        run_handler(
            sqlite_store,
            "backup.create",
            {"source": {"url": pg_server.dsn()}, "pg_dump_path": str(fake), "destination": str(tmp_path / "d")},
            data_dir=tmp_path,
        )
    assert "pg_dump 12 is older than the server (15)" in str(err.value)
    assert "postgresql-client-15" in str(err.value)
    assert _leftovers(tmp_path / "d") == []


def test_a_failing_pg_dump_leaves_no_partial_artifact(pg_server, sqlite_store, tmp_path):
    real = pg_server.bin("pg_dump")
    fake = tmp_path / "bin" / "pg_dump"
    fake.parent.mkdir()
    fake.write_text(
        f'#!/bin/sh\nif [ "$1" = --version ]; then exec {real} --version; fi\n'
        "head -c 300000 /dev/urandom; echo 'pg_dump: error: disk on fire' >&2; exit 1\n"
    )
    fake.chmod(0o755)
    os.symlink(pg_server.bin("pg_restore"), tmp_path / "bin" / "pg_restore")
    with pytest.raises(UserError, match="disk on fire"):
        run_handler(
            sqlite_store,
            "backup.create",
            {"source": {"url": pg_server.dsn()}, "pg_bin_dir": str(fake.parent), "destination": str(tmp_path / "d")},
            data_dir=tmp_path,
        )
    assert _leftovers(tmp_path / "d") == []


def test_row_count_tables_use_the_primary_key_order(pg_server):
    name = pg_server.create_database()
    pg_server.psql("create table t(a int, b int, primary key (b, a)); create table n(x int)", name)
    with psycopg.connect(pg_server.dsn(name)) as conn:
        tables = {t.key: t for t in list_tables(conn)}
    assert tables["public.t"].pk == ["b", "a"] and tables["public.n"].pk is None
    assert "ORDER BY t::text" in checksum_query(Table("public", "n")).as_string(None)
    assert PgTarget.from_spec({"url": "postgresql+psycopg://u:pw@h:1/d"}).describe() == "u@h:1/d"
    pg_server.drop_database(name)

"""SQLite, files (excludes, encryption) and Redis backups, each verified."""

from __future__ import annotations

import hashlib
import sqlite3
import tarfile
from pathlib import Path

import pytest
import zstandard

from support.contexts import run_handler
from support.servers import require_binary, start_redis
from upkeep.errors import ConfigError
from upkeep.handlers.backup import catalog
from upkeep.handlers.backup.crypto import Decryptor, Encryptor, key_id
from upkeep.handlers.backup.stream import ArtifactReader
from upkeep.store.records import Records

KEY_HEX = "11" * 32


def _db(path: Path, rows: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("create table if not exists notes(id integer primary key, body text)")
    conn.executemany("insert into notes(body) values (?)", [(f"note {i}",) for i in range(rows)])
    conn.commit()
    conn.close()


def test_sqlite_backup_verify_and_restore_into_a_new_file(sqlite_store, tmp_path):
    db = tmp_path / "app.db"
    _db(db, 300)
    live = sqlite3.connect(db)  # an open writer does not stop the online backup
    live.execute("begin immediate")
    live.execute("insert into notes(body) values ('uncommitted')")
    source = {"type": "sqlite", "path": str(db)}
    made = run_handler(
        sqlite_store, "backup.create", {"source": source, "destination": str(tmp_path / "b")}, data_dir=tmp_path
    )
    live.rollback()
    live.close()
    assert made["row_counts"] == {"notes": 300}
    verified = run_handler(sqlite_store, "backup.verify", {"source": source}, data_dir=tmp_path)
    assert verified["outcome"] == "ok", verified["summary"]
    target = tmp_path / "restored.db"
    result = run_handler(
        sqlite_store,
        "backup.restore",
        {"source": source, "target_path": str(target), "create": True},
        data_dir=tmp_path,
        confirm=True,
    )
    assert result["outcome"] == "ok"
    assert sqlite3.connect(target).execute("select count(*) from notes").fetchone()[0] == 300


def test_files_backup_never_contains_the_backup_directory_and_honours_excludes(sqlite_store, tmp_path):
    root = tmp_path / "site"
    (root / "conf").mkdir(parents=True)
    (root / "conf" / "app.yaml").write_text("a: 1\n")
    (root / "cache.tmp").write_text("junk")
    (root / "backups" / "old").mkdir(parents=True)
    (root / "backups" / "old" / "earlier-backup.tar.zst").write_bytes(b"old backup")
    source = {"type": "files", "paths": [str(root)], "name": "site"}
    cfg = {"source": source, "destination": str(root / "backups"), "excludes": ["*.tmp"]}
    first = run_handler(sqlite_store, "backup.create", cfg, data_dir=tmp_path)
    second = run_handler(sqlite_store, "backup.create", cfg, data_dir=tmp_path)
    for made in (first, second):
        raw = tmp_path / "raw.tar"
        ArtifactReader(Path(made["path"]), "zstd").extract_to(raw, keep_going=False)
        with tarfile.open(raw) as tar:
            names = tar.getnames()
        assert "site/conf/app.yaml" in names
        assert not [n for n in names if n.startswith("site/backups") or n.endswith(".tmp")]
    verified = run_handler(sqlite_store, "backup.verify", {"source": "site", "which": "all"}, data_dir=tmp_path)
    assert verified["outcome"] == "ok", verified["summary"]


def test_encrypted_files_backup_round_trips_and_names_only_the_key_id(sqlite_store, tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUP_KEY", KEY_HEX)
    secret = tmp_path / "secrets"
    secret.mkdir()
    (secret / "token.txt").write_text("top-secret-token-value")
    source = {"type": "files", "paths": [str(secret)]}
    made = run_handler(
        sqlite_store,
        "backup.create",
        {"source": source, "destination": str(tmp_path / "b"), "encrypt": True, "encryption_key_env": "BACKUP_KEY"},
        data_dir=tmp_path,
    )
    artifact = Path(made["path"])
    assert artifact.name.endswith(".tar.zst.enc")
    assert b"top-secret-token-value" not in artifact.read_bytes()
    manifest_text = Path(str(artifact) + ".manifest.json").read_text()
    assert key_id(bytes.fromhex(KEY_HEX)) in manifest_text and KEY_HEX not in manifest_text
    assert run_handler(sqlite_store, "backup.verify", {"source": source}, data_dir=tmp_path)["outcome"] == "ok"
    out = tmp_path / "out"
    run_handler(
        sqlite_store,
        "backup.restore",
        {"source": source, "target_path": str(out), "allow_unverified": True},
        data_dir=tmp_path,
        confirm=True,
    )
    assert (out / "secrets" / "token.txt").read_text() == "top-secret-token-value"
    monkeypatch.setenv("BACKUP_KEY", "22" * 32)
    with pytest.raises(ConfigError, match="key id"):
        run_handler(sqlite_store, "backup.verify", {"source": source}, data_dir=tmp_path)


def test_encryption_detects_truncation_and_tampering():
    key = bytes(range(32))
    enc = Encryptor(key, chunk_size=1000)
    sealed = enc.update(b"a" * 3500) + enc.finalize()
    assert Decryptor(key).update(sealed) == b"a" * 3500
    dec = Decryptor(key)
    dec.update(sealed[: len(sealed) - 600])
    with pytest.raises(Exception, match="truncated"):
        dec.finalize()
    tampered = bytearray(sealed)
    tampered[100] ^= 1
    with pytest.raises(Exception, match="authentication"):
        Decryptor(key).update(bytes(tampered))


def test_encrypt_without_a_key_is_a_config_error_and_writes_nothing(sqlite_store, tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="NO_SUCH_KEY is not set"):
        run_handler(
            sqlite_store,
            "backup.create",
            {
                "source": {"type": "files", "paths": [str(tmp_path / "f")]},
                "destination": str(tmp_path / "b"),
                "encrypt": True,
                "encryption_key_env": "NO_SUCH_KEY",
            },
            data_dir=tmp_path,
        )
    assert not (tmp_path / "b").exists()


def test_copy_to_second_location_is_checksummed(sqlite_store, tmp_path):
    db = tmp_path / "c.db"
    _db(db, 10)
    made = run_handler(
        sqlite_store,
        "backup.create",
        {"source": {"type": "sqlite", "path": str(db)}, "destination": "main"},
        targets={"backups": {"main": {"path": str(tmp_path / "one"), "copy_to": str(tmp_path / "two")}}},
        data_dir=tmp_path,
    )
    copy = Path(made["copies"][0]["path"])
    assert copy.parent == tmp_path / "two" / "c"
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == made["sha256"]
    assert Path(str(copy) + ".manifest.json").exists()


@pytest.mark.redis
def test_redis_backup_is_verified_with_redis_check_rdb_on_a_copy(sqlite_store, tmp_path):
    require_binary("redis-check-rdb")
    server = start_redis("--save", "", "--appendonly", "no")
    try:
        import redis

        client = redis.Redis(port=server.port)
        client.mset({f"k{i}": f"v{i}" for i in range(200)})
        source = {"type": "redis", "url": server.url, "name": "cache"}
        made = run_handler(
            sqlite_store, "backup.create", {"source": source, "destination": str(tmp_path / "b")}, data_dir=tmp_path
        )
        artifact = Path(made["path"])
        before = (hashlib.sha256(artifact.read_bytes()).hexdigest(), artifact.stat().st_mtime_ns)
        rdb = zstandard.ZstdDecompressor().decompressobj().decompress(artifact.read_bytes())
        assert rdb.startswith(b"REDIS")
        verified = run_handler(sqlite_store, "backup.verify", {"source": source}, data_dir=tmp_path)
        assert verified["outcome"] == "ok", verified["summary"]
        assert "RDB looks OK" in verified["backups"][0]["checks"][-1]["message"]
        assert (hashlib.sha256(artifact.read_bytes()).hexdigest(), artifact.stat().st_mtime_ns) == before

        # a corrupt RDB whose artifact checksum matches (corrupted before upkeep saw it) is still caught
        bad = bytearray(rdb)
        bad[len(bad) // 2] ^= 0xFF
        cctx = zstandard.ZstdCompressor()
        artifact.write_bytes(cctx.compress(bytes(bad)))
        records = Records(sqlite_store, "backup")
        entry = catalog.find(records, made["backup_id"])
        entry["manifest"]["sha256"] = hashlib.sha256(artifact.read_bytes()).hexdigest()
        entry["manifest"]["size"] = artifact.stat().st_size
        catalog.put(records, entry)
        broken = run_handler(sqlite_store, "backup.verify", {"source": source}, data_dir=tmp_path)
        assert broken["outcome"] == "critical" and "redis-check-rdb" in broken["summary"]
    finally:
        server.remove()

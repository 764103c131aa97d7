"""Off-site copies in an S3-compatible server (moto's server mode) and over SFTP (OpenSSH's sshd)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest

from support.contexts import events_of, make_context, run_handler
from support.servers import start_s3, start_sshd
from upkeep.engine.context import RunCancelled
from upkeep.engine.registry import REGISTRY
from upkeep.errors import ConfigError
from upkeep.handlers.backup import catalog
from upkeep.store.records import Records

SECRET = "s3-secret-value-42"


@pytest.fixture(scope="module")
def s3():
    server = start_s3()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="module")
def sshd():
    server = start_sshd()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def creds(monkeypatch):
    monkeypatch.setenv("S3_KEY", "test-key")
    monkeypatch.setenv("S3_SECRET", SECRET)


def _bucket(s3, name: str, lock: bool = False) -> str:
    client = s3.client()
    if lock:
        client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        client.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})
    else:
        client.create_bucket(Bucket=name)
    return name


def _s3_repo(s3, bucket: str, **extra) -> dict:
    return {
        "type": "s3",
        "endpoint": s3.endpoint,
        "region": "us-east-1",
        "bucket": bucket,
        "prefix": "prod/",
        "access_key_id": "${env:S3_KEY}",
        "secret_access_key": "${env:S3_SECRET}",
        **extra,
    }


def _sftp_repo(sshd, tmp_path: Path, **extra) -> dict:
    return {
        "type": "sftp",
        "host": "127.0.0.1",
        "port": sshd.port,
        "user": sshd.user,
        "path": str(tmp_path / "remote"),
        "private_key": str(sshd.key),
        "known_hosts": str(sshd.known_hosts),
        **extra,
    }


def _targets(tmp_path: Path, repos: dict) -> dict:
    return {"backups": {"nightly": {"path": str(tmp_path / "local"), "offsite": repos}}}


def _db(path: Path, rows: int) -> dict:
    conn = sqlite3.connect(path)
    conn.execute("create table if not exists notes(id integer primary key, body text)")
    conn.executemany("insert into notes(body) values (?)", [(f"note {i}",) for i in range(rows)])
    conn.commit()
    conn.close()
    return {"type": "sqlite", "path": str(path), "name": "notes"}


def _keys(s3, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket).get("Contents", []))


def test_s3_copy_is_checked_and_a_flipped_remote_byte_is_caught_naming_the_repository(
    s3, creds, sqlite_store, tmp_path
):
    bucket = _bucket(s3, "flip")
    targets = _targets(tmp_path, {"offsite-s3": _s3_repo(s3, bucket)})
    source = _db(tmp_path / "app.db", 500)
    made = run_handler(
        sqlite_store, "backup.create", {"source": source, "destination": "nightly"}, targets=targets, data_dir=tmp_path
    )
    assert made["outcome"] == "ok", made["summary"]
    assert made["offsite"] == [{"repository": "offsite-s3", "id": made["backup_id"], "ok": True}]
    artifact = Path(made["path"]).name
    assert _keys(s3, bucket) == [f"prod/notes/{artifact}", f"prod/notes/{artifact}.manifest.json"]
    body = s3.client().get_object(Bucket=bucket, Key=f"prod/notes/{artifact}")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == made["sha256"]
    records_text = json.dumps([v for _, v in Records(sqlite_store, "backup").items()])
    assert SECRET not in records_text and "offsite-s3" in records_text

    remote = {"source": "notes", "from_repository": "offsite-s3"}
    ok = run_handler(sqlite_store, "backup.verify", remote, targets=targets, data_dir=tmp_path)
    assert ok["outcome"] == "ok", ok["summary"]

    flipped = bytearray(body)
    flipped[len(flipped) // 2] ^= 0x01
    s3.client().put_object(Bucket=bucket, Key=f"prod/notes/{artifact}", Body=bytes(flipped))
    broken = run_handler(sqlite_store, "backup.verify", remote, targets=targets, data_dir=tmp_path)
    assert broken["outcome"] == "critical"
    assert "repository offsite-s3" in broken["summary"] and "checksum mismatch" in broken["summary"]
    entry = catalog.find(Records(sqlite_store, "backup"), made["backup_id"])
    assert entry["offsite"]["offsite-s3"]["status"] == "broken"
    local = run_handler(sqlite_store, "backup.verify", {"source": "notes"}, targets=targets, data_dir=tmp_path)
    assert local["outcome"] == "ok"  # the local artifact is fine; only the remote copy is broken


@pytest.mark.parametrize("kind", ["s3", "sftp"])
def test_restore_from_the_remote_copy_round_trips_after_the_local_disk_is_lost(
    kind, s3, sshd, creds, sqlite_store, tmp_path
):
    repo = _s3_repo(s3, _bucket(s3, "roundtrip")) if kind == "s3" else _sftp_repo(sshd, tmp_path)
    targets = _targets(tmp_path, {"away": repo})
    source = _db(tmp_path / "app.db", 321)
    made = run_handler(
        sqlite_store, "backup.create", {"source": source, "destination": "nightly"}, targets=targets, data_dir=tmp_path
    )
    assert made["outcome"] == "ok", made["summary"]
    verified = run_handler(
        sqlite_store,
        "backup.verify",
        {"source": "notes", "from_repository": "away"},
        targets=targets,
        data_dir=tmp_path,
    )
    assert verified["outcome"] == "ok", verified["summary"]
    if kind == "sftp":
        remote_dir = tmp_path / "remote" / "notes"
        assert {p.name for p in remote_dir.iterdir()} == {
            Path(made["path"]).name,
            Path(made["path"]).name + ".manifest.json",
        }
        assert all(p.stat().st_mode & 0o077 == 0 for p in remote_dir.iterdir())
    Path(made["path"]).unlink()  # the local disk is gone

    restored_to = tmp_path / "restored.db"
    cfg = {"source": "notes", "target_path": str(restored_to), "create": True, "from_repository": "away"}
    plan = run_handler(sqlite_store, "backup.restore", cfg, targets=targets, data_dir=tmp_path, dry_run=True)
    assert plan["plan"]["repository"] == "away" and "download" in plan["plan"]["steps"][0]
    result = run_handler(sqlite_store, "backup.restore", cfg, targets=targets, data_dir=tmp_path, confirm=True)
    assert result["outcome"] == "ok", result["summary"]
    assert sqlite3.connect(restored_to).execute("select count(*) from notes").fetchone()[0] == 321


class _CancelAt:
    """A journal that requests a cancel when a progress message contains ``marker``: an upload
    interrupted after a known amount, like a worker killed there."""

    def __init__(self, inner, ctx_holder: list, marker: str):
        self.inner, self.ctx_holder, self.marker = inner, ctx_holder, marker

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def progress(self, run_id, fraction, message):
        self.inner.progress(run_id, fraction, message)
        if message and self.marker in message:
            self.ctx_holder[0].cancel_event.set()


def _interrupted_create(store, config: dict, targets: dict, tmp_path: Path, marker: str) -> None:
    ctx = make_context(store, "backup.create", targets=targets, data_dir=tmp_path)
    ctx.journal = _CancelAt(ctx.journal, [ctx], marker)
    spec = REGISTRY.get("backup.create")
    with pytest.raises(RunCancelled):
        spec.func(ctx, spec.validate_config(config))


def _big_source(tmp_path: Path, mib: int) -> dict:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "blob.bin").write_bytes(os.urandom(mib << 20))
    return {"type": "files", "paths": [str(tmp_path / "data")], "name": "blob"}


def _upload_events(store, run_id: int) -> list[dict]:
    return [e for e in events_of(store, run_id) if e["event"] in ("offsite_uploaded", "upload_restarted")]


def test_an_interrupted_s3_upload_resumes_from_its_parts_or_restarts_cleanly(s3, creds, sqlite_store, tmp_path):
    bucket = _bucket(s3, "resume")
    targets = _targets(tmp_path, {"s3": _s3_repo(s3, bucket, part_size_mb=5)})
    config = {"source": _big_source(tmp_path, 12), "destination": "nightly", "compression": "none"}
    _interrupted_create(sqlite_store, config, targets, tmp_path, "part 1/3")
    uploads = s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert len(uploads) == 1 and _keys(s3, bucket) == []
    first = catalog.entries(Records(sqlite_store, "backup"), "blob")[0]
    assert first["offsite"]["s3"]["status"] == "pending"

    second = run_handler(sqlite_store, "backup.create", config, targets=targets, data_dir=tmp_path)
    assert second["outcome"] == "ok", second["summary"]
    assert {u["id"] for u in second["offsite"]} == {first["id"], second["backup_id"]}
    uploaded = {e["data"]["backup_id"]: e["data"] for e in _upload_events(sqlite_store, second["_run_id"])}
    assert uploaded[first["id"]]["resumed_parts"] == 1 and uploaded[second["backup_id"]]["resumed_parts"] == 0
    body = s3.client().get_object(Bucket=bucket, Key=f"prod/blob/{Path(first['path']).name}")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == first["manifest"]["sha256"]

    # the server forgets the interrupted upload (expiry, lifecycle rule): the next run starts over
    _interrupted_create(sqlite_store, config, targets, tmp_path, "part 2/3")
    for upload in s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        s3.client().abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    third = run_handler(sqlite_store, "backup.create", config, targets=targets, data_dir=tmp_path)
    assert third["outcome"] == "ok", third["summary"]
    assert any(e["event"] == "upload_restarted" for e in _upload_events(sqlite_store, third["_run_id"]))
    assert s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    for entry in catalog.entries(Records(sqlite_store, "backup"), "blob"):
        assert entry["offsite"]["s3"]["status"] == "uploaded"
        key = f"prod/blob/{Path(entry['path']).name}"
        got = hashlib.sha256(s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()
        assert got == entry["manifest"]["sha256"]


def test_an_interrupted_sftp_upload_resumes_and_a_damaged_partial_is_uploaded_again(sshd, sqlite_store, tmp_path):
    targets = _targets(tmp_path, {"box": _sftp_repo(sshd, tmp_path)})
    config = {"source": _big_source(tmp_path, 20), "destination": "nightly", "compression": "none"}
    _interrupted_create(sqlite_store, config, targets, tmp_path, "8 MiB")
    first = catalog.entries(Records(sqlite_store, "backup"), "blob")[0]
    partial = tmp_path / "remote" / "blob" / (Path(first["path"]).name + ".partial")
    assert partial.stat().st_size == 8 << 20

    second = run_handler(sqlite_store, "backup.create", config, targets=targets, data_dir=tmp_path)
    assert second["outcome"] == "ok", second["summary"]
    uploaded = {e["data"]["backup_id"]: e["data"] for e in _upload_events(sqlite_store, second["_run_id"])}
    assert uploaded[first["id"]]["resumed_bytes"] == 8 << 20
    final = partial.with_name(Path(first["path"]).name)
    assert not partial.exists() and hashlib.sha256(final.read_bytes()).hexdigest() == first["manifest"]["sha256"]

    _interrupted_create(sqlite_store, config, targets, tmp_path, "8 MiB")
    third_entry = catalog.entries(Records(sqlite_store, "backup"), "blob")[0]
    damaged = tmp_path / "remote" / "blob" / (Path(third_entry["path"]).name + ".partial")
    data = bytearray(damaged.read_bytes())
    data[100] ^= 0xFF
    damaged.write_bytes(bytes(data))
    third = run_handler(sqlite_store, "backup.create", config, targets=targets, data_dir=tmp_path)
    assert third["outcome"] == "ok", third["summary"]
    assert any(e["event"] == "upload_restarted" for e in _upload_events(sqlite_store, third["_run_id"]))
    copy = damaged.with_name(Path(third_entry["path"]).name)
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == third_entry["manifest"]["sha256"]


def test_remote_retention_keeps_the_newest_verified_backup(s3, creds, sqlite_store, tmp_path):
    bucket = _bucket(s3, "retention")
    targets = _targets(tmp_path, {"s3": _s3_repo(s3, bucket, retention={"keep_last": 1})})
    source = _db(tmp_path / "app.db", 10)
    cfg = {"source": source, "destination": "nightly"}
    first = run_handler(sqlite_store, "backup.create", cfg, targets=targets, data_dir=tmp_path)
    assert (
        run_handler(sqlite_store, "backup.verify", {"source": "notes"}, targets=targets, data_dir=tmp_path)["outcome"]
        == "ok"
    )
    second = run_handler(sqlite_store, "backup.create", cfg, targets=targets, data_dir=tmp_path)
    third = run_handler(sqlite_store, "backup.create", cfg, targets=targets, data_dir=tmp_path)
    names = {Path(r["path"]).name: r["backup_id"] for r in (first, second, third)}
    remaining = {names[k.rsplit("/", 1)[1]] for k in _keys(s3, bucket) if not k.endswith(".manifest.json")}
    assert remaining == {first["backup_id"], third["backup_id"]}  # newest, and newest verified
    assert third["offsite_retention"][0]["deleted"] == [{"id": second["backup_id"]}]
    assert Path(second["path"]).exists()  # the local copies follow their own (here: no) retention


def test_object_lock_never_outlives_retention_and_prune_reports_locked_copies(s3, creds, sqlite_store, tmp_path):
    bucket = _bucket(s3, "locked", lock=True)
    too_long = _s3_repo(s3, bucket, object_lock={"days": 30}, retention={"max_age_days": 7})
    source = _db(tmp_path / "app.db", 10)
    with pytest.raises(ConfigError, match=r"offsite\.s3\.object_lock.*longer than the retention keeps a copy"):
        run_handler(
            sqlite_store,
            "backup.create",
            {"source": source, "destination": "nightly"},
            targets=_targets(tmp_path, {"s3": too_long}),
            data_dir=tmp_path,
        )
    repo = _s3_repo(s3, bucket, object_lock={"days": 1}, retention={"keep_daily": 3, "keep_last": 1, "min_keep": 1})
    targets = _targets(tmp_path, {"s3": repo})
    cfg = {"source": source, "destination": "nightly"}
    first = run_handler(sqlite_store, "backup.create", cfg, targets=targets, data_dir=tmp_path)
    entry = catalog.find(Records(sqlite_store, "backup"), first["backup_id"])
    assert entry["offsite"]["s3"]["locked_until"] is not None
    pruned = run_handler(
        sqlite_store,
        "backup.prune",
        {"source": "notes", "retention": {"keep_last": 5}},
        targets=targets,
        data_dir=tmp_path,
    )
    assert pruned["offsite"][0]["locked"] == []
    # a policy that wants the copy gone while it is locked: reported, not a failure
    tight = _targets(tmp_path, {"s3": {**repo, "retention": {"keep_daily": 1, "keep_last": 1, "min_keep": 0}}})
    run_handler(sqlite_store, "backup.create", cfg, targets=tight, data_dir=tmp_path)
    second = run_handler(sqlite_store, "backup.create", cfg, targets=tight, data_dir=tmp_path)
    assert second["outcome"] == "ok", second["summary"]
    locked = second["offsite_retention"][0]["locked"]
    assert first["backup_id"] in {x["id"] for x in locked} and all(x["locked_until"] for x in locked)
    assert f"prod/notes/{Path(first['path']).name}" in _keys(s3, bucket)

"""Retention: property tests of the pure selection, and the prune handler's dry run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.contexts import run_handler
from upkeep.handlers.backup import catalog
from upkeep.handlers.backup.retention import BackupInfo, Policy, select
from upkeep.store.records import Records

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

backups_st = st.lists(
    st.tuples(st.floats(min_value=0, max_value=400 * 24, allow_nan=False), st.booleans()), max_size=40
).map(lambda items: [BackupInfo(f"b{i:03d}", NOW - timedelta(hours=h), v) for i, (h, v) in enumerate(items)])
opt = st.one_of(st.none(), st.integers(min_value=1, max_value=10))
policy_st = st.builds(
    Policy,
    keep_last=opt,
    keep_daily=opt,
    keep_weekly=opt,
    keep_monthly=opt,
    max_age_days=st.one_of(st.none(), st.floats(min_value=0.1, max_value=400)),
    min_keep=st.integers(min_value=0, max_value=5),
)


@given(backups_st, policy_st)
def test_newest_verified_backup_and_min_keep_always_survive(backups, policy):
    decision = select(backups, policy, NOW)
    ordered = sorted(backups, key=lambda b: (b.created_at, b.id), reverse=True)
    verified = [b for b in ordered if b.verified]
    if verified:
        assert verified[0].id in decision.keep
    for b in ordered[: policy.min_keep]:
        assert b.id in decision.keep
    assert set(decision.keep) | set(decision.delete) == {b.id for b in backups}
    assert not set(decision.keep) & set(decision.delete)


def test_grandfather_father_son_keeps_one_per_period():
    backups = [BackupInfo(f"d{d:02d}h{h}", NOW - timedelta(days=d, hours=h)) for d in range(60) for h in (0, 6)]
    decision = select(backups, Policy(keep_daily=7, keep_weekly=4, keep_monthly=3, min_keep=0), NOW)
    daily = [i for i, r in decision.keep.items() if any(x.startswith("daily") for x in r)]
    assert sorted(daily) == [f"d{d:02d}h0" for d in range(7)]
    assert len([i for i, r in decision.keep.items() if any(x.startswith("monthly") for x in r)]) == 3
    assert len(decision.keep) < len(backups)


def test_max_age_overrides_keep_rules_but_not_the_protections():
    backups = [
        BackupInfo("old-verified", NOW - timedelta(days=100), True),
        BackupInfo("old", NOW - timedelta(days=90)),
        BackupInfo("new", NOW - timedelta(days=1)),
    ]
    decision = select(backups, Policy(keep_last=10, max_age_days=30, min_keep=1), NOW)
    assert decision.delete == ["old"]
    assert decision.keep["old-verified"] == ["newest verified"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(backups_st, policy_st)
def test_prune_dry_run_deletes_nothing(sqlite_store, tmp_path, backups, policy):
    records = Records(sqlite_store, "backup")
    records.delete_prefix("")
    files = []
    for b in backups:
        path = tmp_path / f"{b.id}.dump.zst"
        path.write_bytes(b"x")
        files.append(path)
        catalog.put(
            records,
            {
                "id": b.id,
                "source": "s",
                "type": "postgres",
                "created_at": b.created_at.isoformat(),
                "status": "verified" if b.verified else "created",
                "path": str(path),
                "copies": [],
                "manifest": {"size": 1},
            },
        )
    from upkeep.clock import FakeClock

    cfg = {k: v for k, v in vars(policy).items() if v is not None}
    result = run_handler(
        sqlite_store, "backup.prune", {"source": "s", "retention": cfg}, dry_run=True, clock=FakeClock(NOW)
    )
    assert all(p.exists() for p in files)
    assert len(records.keys("s/")) == len(backups)
    assert len(result["would_delete"]) == len(select(backups, policy, NOW).delete)


def test_prune_deletes_artifacts_and_catalog_entries(sqlite_store, tmp_path):
    records = Records(sqlite_store, "backup")
    paths = {}
    for days in range(5):
        b_id = f"b{days}"
        path = tmp_path / f"{b_id}.dump.zst"
        path.write_bytes(b"x")
        Path(str(path) + ".manifest.json").write_text("{}")
        paths[b_id] = path
        catalog.put(
            records,
            {
                "id": b_id,
                "source": "s",
                "type": "postgres",
                "status": "verified" if days == 3 else "created",
                "created_at": (NOW - timedelta(days=days)).isoformat(),
                "path": str(path),
                "copies": [],
                "manifest": {"size": 1},
            },
        )
    from upkeep.clock import FakeClock

    result = run_handler(
        sqlite_store, "backup.prune", {"source": "s", "retention": {"keep_last": 2}}, clock=FakeClock(NOW)
    )
    assert sorted(d["id"] for d in result["deleted"]) == ["b2", "b4"]
    assert sorted(records.keys("s/")) == ["s/b0", "s/b1", "s/b3"]  # b3: the newest verified
    assert not paths["b4"].exists() and not Path(str(paths["b4"]) + ".manifest.json").exists()
    assert paths["b3"].exists()

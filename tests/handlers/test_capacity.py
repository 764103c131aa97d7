"""capacity.sample records real metrics; capacity.plan projects known linear trends to the right day."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

from support.contexts import run_handler
from upkeep.app.run_services import RunServices
from upkeep.clock import FakeClock
from upkeep.handlers.trends.capacity import GIB, PLAN_KEY, fit_trend, store_sample
from upkeep.reports.render import capacity_chart_svg
from upkeep.settings import Settings
from upkeep.store.records import Records

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _samples(store, days: int, every_hours: float = 24.0) -> datetime:
    """Synthetic samples with known trends and a little deterministic noise; returns the last time."""
    records = Records(store, "capacity")
    at = T0
    step = 0
    while at <= T0 + timedelta(days=days):
        d = (at - T0).total_seconds() / 86400
        noise = 0.2 if step % 2 else -0.2
        store_sample(
            records,
            at,
            {
                "disk.used_percent:/data": 50 + 0.5 * d + noise,  # reaches 80 at day 60
                "db.size:app": (60 + 1.0 * d) * GIB + noise * 1e6,  # reaches 100 GiB at day 40
                "requests.per_min:api": 1200 + noise,  # already over 1,000
                "memory.used_percent": 40 - 0.1 * d,  # shrinking, no threshold
            },
        )
        at += timedelta(hours=every_hours)
        step += 1
    return at - timedelta(hours=every_hours)


def test_projected_crossing_dates_are_within_a_day_of_the_truth(sqlite_store):
    last = _samples(sqlite_store, days=20)
    result = run_handler(sqlite_store, "capacity.plan", {}, clock=FakeClock(last))
    by_metric = {m["metric"]: m for m in result["metrics"]}
    disk = by_metric["disk.used_percent:/data"]
    assert abs(datetime.fromisoformat(disk["crossing_date"]) - (T0 + timedelta(days=60))) < timedelta(days=1)
    assert abs(disk["growth_per_day"] - 0.5) < 0.02
    assert disk["status"] == "ok"  # 40 days away: beyond the 30-day warning
    db = by_metric["db.size:app"]
    assert abs(datetime.fromisoformat(db["crossing_date"]) - (T0 + timedelta(days=40))) < timedelta(days=1)
    assert db["status"] == "warning" and 19 <= db["days_until_crossing"] <= 21
    assert by_metric["requests.per_min:api"]["status"] == "critical"
    assert by_metric["memory.used_percent"]["status"] == "no_threshold"
    assert result["outcome"] == "critical"
    assert {f["item"] for f in result["findings"]} == {"db.size:app", "requests.per_min:api"}
    assert Records(sqlite_store, "capacity").get(PLAN_KEY)["outcome"] == "critical"


def test_thresholds_in_config_override_the_scaling_triggers(sqlite_store):
    last = _samples(sqlite_store, days=20)
    result = run_handler(
        sqlite_store,
        "capacity.plan",
        {"thresholds": {"disk.used_percent:/data": 70}, "metrics": ["disk.*"]},
        clock=FakeClock(last),
    )
    (disk,) = result["metrics"]
    assert abs(datetime.fromisoformat(disk["crossing_date"]) - (T0 + timedelta(days=40))) < timedelta(days=1)
    assert disk["status"] == "warning"


def test_too_few_samples_are_said_not_guessed(sqlite_store):
    last = _samples(sqlite_store, days=0.1, every_hours=1)  # 3 samples over 2 hours
    result = run_handler(sqlite_store, "capacity.plan", {}, clock=FakeClock(last))
    assert {m["status"] for m in result["metrics"]} == {"too_few_samples"}
    assert all(m["crossing_date"] is None and m["growth_per_day"] is None for m in result["metrics"])
    assert "too few samples" in result["metrics"][0]["message"]
    assert result["outcome"] == "ok"
    assert "too few samples" in result["summary"]


def test_no_samples_at_all_is_said_too(sqlite_store):
    result = run_handler(sqlite_store, "capacity.plan", {})
    assert result["metrics"] == [] and "too few samples" in result["summary"]


def test_least_squares_fit_recovers_slope_and_intercept():
    points = [(T0 + timedelta(days=d), 3.0 + 2.0 * d) for d in range(5)]
    fit = fit_trend(points)
    assert abs(fit["slope_per_day"] - 2.0) < 1e-9 and abs(fit["intercept"] - 3.0) < 1e-9 and fit["r2"] == 1.0


def test_capacity_sample_records_real_metrics(sqlite_store, tmp_path, pg_server, pg_database):
    data = tmp_path / "uploads"
    data.mkdir()
    (data / "a.bin").write_bytes(b"x" * 4096)
    (data / "sub").mkdir()
    (data / "sub" / "b.bin").write_bytes(b"y" * 1000)
    log = tmp_path / "api.log"
    now = datetime.now(UTC)
    lines = [
        {
            "level": "info",
            "time": (now - timedelta(minutes=i)).isoformat(),
            "statusCode": 200,
            "durationMs": 12,
            "msg": "request",
        }
        for i in range(30)
    ]
    log.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    services = RunServices(sqlite_store, Settings(config=tmp_path / "upkeep.yaml"))
    url = pg_database.replace("postgresql+psycopg://", "postgresql://")
    result = run_handler(
        sqlite_store,
        "capacity.sample",
        {
            "disk_paths": [str(tmp_path)],
            "size_paths": [str(data)],
            "databases": [url, "upkeep"],
            "logs": [str(log)],
            "cpu_sample_seconds": 0.1,
        },
        services=services,
    )
    m = result["metrics"]
    assert result["outcome"] == "ok", result["findings"]
    assert m[f"dir.bytes:{data}"] == 5096
    assert 0 < m[f"disk.used_percent:{tmp_path}"] <= 100
    db_name = url.rsplit("/", 1)[-1]
    assert any(k.startswith("db.size:") and k.endswith(f"/{db_name}") for k in m)
    assert m["db.size:upkeep"] > 0  # the SQLite store itself
    assert m[f"requests.per_min:{log}"] == 0.5  # 30 requests in the last hour
    assert m["queue.depth"] == 0 and "cpu.percent" in m and "memory.used_percent" in m
    keys = Records(sqlite_store, "capacity").keys("sample/")
    assert len(keys) == 1


def test_old_samples_are_deleted_after_keep_days(sqlite_store):
    records = Records(sqlite_store, "capacity")
    for d in range(5):
        store_sample(records, T0 + timedelta(days=d), {"x": float(d)})
    config = {"disk_paths": [], "cpu": False, "memory": False, "queue": False, "keep_days": 2}
    result = run_handler(sqlite_store, "capacity.sample", config, clock=FakeClock(T0 + timedelta(days=5)))
    assert result["samples_removed"] == 3
    assert len(records.keys("sample/")) == 3


def test_capacity_chart_is_an_svg_with_samples_trend_threshold_and_crossing(sqlite_store):
    last = _samples(sqlite_store, days=20)
    result = run_handler(sqlite_store, "capacity.plan", {"metrics": ["db.size:*"]}, clock=FakeClock(last))
    projection = result["metrics"][0]
    samples = [(T0 + timedelta(days=d), (60 + d) * GIB) for d in range(21)]
    svg = capacity_chart_svg(samples, projection)
    root = ElementTree.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    classes = {el.get("class") for el in root.iter() if el.get("class")}
    assert {"chart", "samples", "trend", "threshold", "crossing"} <= classes
    assert len(root.findall(f"{ns}polyline")[0].get("points").split()) == 21
    assert "2026-02-1" in svg  # the crossing date label (around 2026-02-10)
    empty = ElementTree.fromstring(capacity_chart_svg([], None))
    assert "no samples" in "".join(empty.itertext())


def test_a_tiny_growth_gives_no_date_instead_of_an_overflow(sqlite_store):
    records = Records(sqlite_store, "capacity")
    for d in range(5):
        store_sample(records, T0 + timedelta(days=d), {"disk.used_percent:/": 10 + 1e-9 * d})
    result = run_handler(sqlite_store, "capacity.plan", {}, clock=FakeClock(T0 + timedelta(days=5)))
    (disk,) = result["metrics"]
    assert disk["status"] == "ok" and disk["crossing_date"] is None
    assert "more than 100 years" in disk["message"]

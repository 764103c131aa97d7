"""logs.analyze on logs written by the real loggers, against an independent computation.

Each log is written by the logger itself (pino from npm, structlog, Python's logging, a real nginx
under load), through the scripts in ``benchmarks/loggers`` that the benchmark uses at scale. The
expected figures come from reading the file back with Python's json module (or the access-log
fields split by hand), never from DuckDB: error count, requests, 5xx rate, average and p95.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import zstandard

from upkeep.handlers.logs.parse import analyze_paths

LOGGERS = Path(__file__).resolve().parents[2] / "benchmarks" / "loggers"
PINO_ERROR_LABELS = {"ERROR", "FATAL"}


def quantile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    h = (len(ordered) - 1) * p
    lo = math.floor(h)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (h - lo) * (ordered[hi] - ordered[lo])


def figures(records: list[dict], since: float, until: float) -> dict:
    """records: {ts (epoch s), error (bool), status (int|None), dur_ms (float|None)}."""
    inside = [r for r in records if since <= r["ts"] <= until]
    requests = [r for r in inside if r["status"] is not None]
    durations = [r["dur_ms"] for r in inside if r["dur_ms"] is not None]
    return {
        "in_window": len(inside),
        "errors": sum(1 for r in inside if r["error"]),
        "requests": len(requests),
        "5xx": sum(1 for r in requests if r["status"] >= 500),
        "avg": sum(durations) / len(durations) if durations else None,
        "p95": quantile(durations, 0.95) if durations else None,
    }


def assert_figures(result: dict, exp: dict) -> None:
    assert result["records"]["in_window"] == exp["in_window"]
    assert result["errors"] == exp["errors"]
    assert result["requests"]["total"] == exp["requests"]
    assert result["requests"]["5xx"] == exp["5xx"]
    assert result["requests"]["rate_5xx"] == pytest.approx(exp["5xx"] / exp["requests"] if exp["requests"] else 0.0)
    if exp["avg"] is None:
        assert result["duration"]["count"] == 0
    else:
        assert result["duration"]["avg_ms"] == pytest.approx(exp["avg"], rel=1e-9)
        assert result["duration"]["p95_ms"] == pytest.approx(exp["p95"], rel=1e-3)


def window(result_now: datetime, hours: float = 24) -> tuple[float, float]:
    return (result_now - timedelta(hours=hours)).timestamp(), result_now.timestamp()


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None or not (LOGGERS / "node_modules" / "pino").is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail("node and pino are needed (tests/support/setup_system.py installs pino with npm ci)")
        pytest.skip("node or pino missing: run tests/support/setup_system.py")
    return found


def pino_log(node: str, out: Path, lines: int, labels: bool, span_hours: float) -> list[dict]:
    subprocess.run(
        [node, str(LOGGERS / "pino_api.js"), str(out), str(lines), "labels" if labels else "numbers", str(span_hours)],
        check=True,
        timeout=60,
    )
    records = []
    for line in out.read_text().splitlines():
        body = json.loads(line)
        level = body["level"]
        records.append(
            {
                "ts": body["time"] / 1000,
                "error": level in PINO_ERROR_LABELS if labels else level >= 50,
                "status": body.get("res", {}).get("statusCode"),
                "dur_ms": body.get("durationMs"),
            }
        )
    return records


def test_pino_numeric_levels_nested_req_res_over_the_last_24h(node, tmp_path):
    log = tmp_path / "api.log"
    records = pino_log(node, log, 6000, labels=False, span_hours=48)
    now = datetime.now(UTC)
    result = analyze_paths([str(log)], window="24h", now=now, by_route=True)
    exp = figures(records, *window(now))
    assert 2500 < exp["in_window"] < 3500 and exp["5xx"] > 10
    assert_figures(result, exp)
    assert result["files"][0]["fields"]["status"] == ["res.statusCode"]
    routes = {r["route"] for r in result["routes"]}
    assert {"/api/users/:id", "/api/conversations/:id/messages", "/api/files/:id/download"} <= routes
    assert "/api/search" in routes  # the query string is no part of the route


def test_pino_upper_case_levels_in_pm2_rotated_gzip_and_zstd_files(node, tmp_path):
    """pm2-logrotate names rotated files ``<app>-out__<date>_<time>.log`` (gzipped when it compresses)."""
    whole = tmp_path / "whole.log"
    records = pino_log(node, whole, 6000, labels=True, span_hours=30)
    lines = whole.read_text().splitlines(keepends=True)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "api-out__2026-12-03_00-00-00.log.gz").write_bytes(gzip.compress("".join(lines[:2000]).encode()))
    zstd = zstandard.ZstdCompressor().compress("".join(lines[2000:4000]).encode())
    (logs / "api-out__2026-12-04_00-00-00.log").write_bytes(zstd)  # compressed, name says nothing
    (logs / "api-out.log").write_text("".join(lines[4000:]))
    (logs / "api-error.log").write_text("not this app's output\n")
    whole.unlink()
    now = datetime.now(UTC)
    result = analyze_paths([str(logs / "api-out*.log*")], window="24h", now=now)
    assert_figures(result, figures(records, *window(now)))
    assert sorted(f["compression"] for f in result["files"]) == ["gzip", "none", "zstd"]


def test_structlog_json_requests_and_exceptions(tmp_path):
    log = tmp_path / "app.json.log"
    subprocess.run([sys.executable, str(LOGGERS / "structlog_api.py"), str(log), "4000", "48"], check=True, timeout=120)
    records = []
    for line in log.read_text().splitlines():
        body = json.loads(line)
        ts = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).timestamp()
        records.append(
            {
                "ts": ts,
                "error": body["level"] in ("error", "critical"),
                "status": body.get("status"),
                "dur_ms": body.get("duration_ms"),
            }
        )
    now = datetime.now(UTC)
    result = analyze_paths([str(log)], window="24h", now=now, by_route=True)
    exp = figures(records, *window(now))
    assert exp["errors"] > 20 and exp["requests"] > 1000
    assert_figures(result, exp)
    assert {"/api/users/:id", "/api/chat"} <= {r["route"] for r in result["routes"]}


def test_python_logging_text_levels_and_tracebacks(tmp_path):
    log = tmp_path / "worker.log"
    env = {**os.environ, "TZ": "Europe/Zagreb"}  # asctime is local time, without an offset
    subprocess.run(
        [sys.executable, str(LOGGERS / "logging_text.py"), str(log), "3000", "48"], check=True, timeout=60, env=env
    )
    records, continuation = [], 0
    for line in log.read_text().splitlines():
        stamp, _, rest = line.partition(" ")
        try:
            day = datetime.strptime(stamp, "%Y-%m-%d")
        except ValueError:
            continuation += 1  # a traceback line: no timestamp of its own
            continue
        clock, level = rest.split(" ")[:2]
        local = datetime.strptime(f"{day:%Y-%m-%d} {clock}", "%Y-%m-%d %H:%M:%S,%f")
        ts = local.replace(tzinfo=__import__("zoneinfo").ZoneInfo("Europe/Zagreb")).timestamp()
        records.append({"ts": ts, "error": level in ("ERROR", "CRITICAL"), "status": None, "dur_ms": None})
    now = datetime.now(UTC)
    result = analyze_paths([str(log)], window="24h", now=now, timezone="Europe/Zagreb")
    exp = figures(records, *window(now))
    assert exp["errors"] > 10 and continuation > 50
    assert_figures(result, exp)
    assert result["records"]["no_timestamp"] == continuation
    assert result["levels"]["debug"] > 0 and result["levels"]["fatal"] > 0  # CRITICAL


def binary(name: str) -> str:
    found = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is needed (tests/support/setup_system.py installs it)")
        pytest.skip(f"{name} missing")
    return found


def access_records(log: Path, seconds_per_unit: float) -> list[dict]:
    """``... [05/Dec/2026:11:57:15 +0000] "GET /api/chat HTTP/1.1" 200 2 "ref" "agent" 0.001``, split by hand."""
    records = []
    for line in log.read_text().splitlines():
        stamp = line[line.index("[") + 1 : line.index("]")]
        after_request = line.split('"')[2].split()
        records.append(
            {
                "ts": datetime.strptime(stamp, "%d/%b/%Y:%H:%M:%S %z").timestamp(),
                "error": False,
                "status": int(after_request[0]),
                "dur_ms": float(line.rsplit(" ", 1)[1]) * seconds_per_unit * 1000,
            }
        )
    return records


@pytest.mark.parametrize(
    ("server", "writer", "unit", "seconds_per_unit"),
    [("nginx", "nginx_access.py", "auto", 1.0), ("apache2", "apache_access.py", "us", 1e-6)],
)
def test_combined_access_log_with_request_time_written_by_a_real_server_under_load(
    tmp_path, server, writer, unit, seconds_per_unit
):
    """nginx appends ``$request_time`` (seconds, read as such by default), Apache ``%D`` (microseconds:
    ``duration_unit: us``)."""
    binary(server)
    log = tmp_path / "access.log"
    started = time.time()
    subprocess.run([sys.executable, str(LOGGERS / writer), str(log), "600"], check=True, timeout=120)
    records = access_records(log, seconds_per_unit)
    assert len(records) == 600
    now = datetime.now(UTC)
    result = analyze_paths([str(log)], window="24h", now=now, duration_unit=unit, by_route=True)
    exp = figures(records, started - 5, now.timestamp())
    assert exp["5xx"] > 0 and any(r["status"] == 404 for r in records)
    assert_figures(result, exp)
    assert result["files"][0]["format"] == "combined"
    assert "/api/users/:id" in {r["route"] for r in result["routes"]}

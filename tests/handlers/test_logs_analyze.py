"""logs.analyze against an independent computation over generated logs of every supported format."""

from __future__ import annotations

import gzip
import json
import math
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import zstandard

import upkeep.handlers.logs.analyze  # noqa: F401  (registers the handler)
from support.contexts import run_handler
from upkeep.clock import FakeClock
from upkeep.errors import ConfigError, UserError
from upkeep.handlers.logs.parse import analyze_paths

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PINO_LEVELS = {"info": 30, "warn": 40, "error": 50, "fatal": 60}


@dataclass
class Rec:
    """One generated record as the test knows it (ts None = no timestamp)."""

    ts: datetime | None
    level: str | None
    status: int | None = None
    dur_ms: float | None = None
    route: str | None = None
    msg: str = ""


def quantile(values: list[float], p: float) -> float:
    """Exact linear interpolation between closest ranks (numpy default), written out."""
    ordered = sorted(values)
    h = (len(ordered) - 1) * p
    lo = math.floor(h)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (h - lo) * (ordered[hi] - ordered[lo])


def expected(records: list[Rec], since: datetime | None, until: datetime | None) -> dict:
    inside = [
        r for r in records if r.ts is not None and (since is None or r.ts >= since) and (until is None or r.ts <= until)
    ]
    levels: dict[str, int] = {}
    for r in inside:
        levels[r.level or "none"] = levels.get(r.level or "none", 0) + 1
    requests = [r for r in inside if r.status is not None]
    durations = [r.dur_ms for r in inside if r.dur_ms is not None]
    per_day: dict[str, int] = {}
    for r in requests:
        day = r.ts.date().isoformat()
        per_day[day] = per_day.get(day, 0) + 1
    routes: dict[str, list[Rec]] = {}
    for r in requests:
        routes.setdefault(r.route or "(none)", []).append(r)
    return {
        "in_window": len(inside),
        "outside": sum(1 for r in records if r.ts is not None) - len(inside),
        "no_timestamp": sum(1 for r in records if r.ts is None),
        "levels": levels,
        "errors": levels.get("error", 0) + levels.get("fatal", 0),
        "requests": len(requests),
        "5xx": sum(1 for r in requests if r.status >= 500),
        "4xx": sum(1 for r in requests if 400 <= r.status < 500),
        "per_day": per_day,
        "durations": durations,
        "routes": routes,
    }


def make_records(
    rnd: random.Random,
    n: int,
    *,
    with_requests: bool = True,
    float_durations: bool = False,
    spread: timedelta = timedelta(hours=48),
) -> list[Rec]:
    """Records spread over [NOW - spread, NOW + 1 h]: some before the window, a few after."""
    out = []
    routes = ["/api/chat", "/api/messages", "/api/search"]
    for i in range(n):
        ts = NOW - spread + timedelta(seconds=rnd.uniform(0, spread.total_seconds() + 3600))
        ts = ts.replace(microsecond=(ts.microsecond // 1000) * 1000)
        status = rnd.choice([200] * 14 + [201, 404, 500, 503]) if with_requests else None
        level = "error" if status and status >= 500 else rnd.choice(["info"] * 8 + ["warn", "error"])
        dur = None
        if with_requests:
            dur = round(rnd.expovariate(1 / 120), 4) if float_durations else float(int(rnd.expovariate(1 / 120)))
        msg = f"upstream timeout after {rnd.randint(1, 9999)} ms" if level == "error" else f"request {i}"
        out.append(Rec(ts, level, status, dur, routes[i % 3] if with_requests else None, msg))
    return out


def iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def pino_line(r: Rec) -> str:
    body: dict = {"level": PINO_LEVELS[r.level], "pid": 7, "msg": r.msg}
    if r.ts is not None:
        body["time"] = int(r.ts.timestamp() * 1000)
    if r.status is not None:
        body["req"] = {"method": "GET", "url": f"{r.route.replace('chat', 'chat/12345')}?q=1"}
        body["res"] = {"statusCode": r.status}
        body["responseTime"] = r.dur_ms
    return json.dumps(body)


def plain_line(r: Rec) -> str:
    body: dict = {"level": r.level.upper(), "message": r.msg}
    if r.ts is not None:
        # an offset other than Z: the record's own offset must be honoured
        body["timestamp"] = r.ts.astimezone(timezone_plus2()).isoformat(timespec="milliseconds")
    if r.status is not None:
        body.update(statusCode=r.status, durationMs=r.dur_ms, route=r.route)
    return json.dumps(body)


def timezone_plus2():
    from datetime import timezone

    return timezone(timedelta(hours=2))


def structlog_line(r: Rec) -> str:
    body: dict = {"event": r.msg, "level": r.level, "logger": "worker"}
    if r.ts is not None:
        body["timestamp"] = r.ts.isoformat().replace("+00:00", "Z")
    return json.dumps(body)


def combined_line(r: Rec) -> str:
    stamp = r.ts.strftime("%d/%b/%Y:%H:%M:%S +0000")
    return f'10.0.0.1 - - [{stamp}] "GET {r.route}?page=2 HTTP/1.1" {r.status} 512 "-" "curl/8.5" {r.dur_ms / 1000:.3f}'


def text_line(r: Rec) -> str:
    if r.ts is None:
        return "    at Object.<anonymous> (/srv/app/index.js:10:5)"
    word = {"info": "INFO", "warn": "WARNING", "error": "ERROR", "fatal": "CRITICAL"}[r.level]
    return f"{r.ts.strftime('%Y-%m-%d %H:%M:%S')},{r.ts.microsecond // 1000:03d} {word} {r.msg}"


def write(path: Path, lines: list[str], compression: str = "none") -> Path:
    data = ("\n".join(lines) + "\n").encode()
    if compression == "gzip":
        data = gzip.compress(data)
    elif compression == "zstd":
        data = zstandard.ZstdCompressor(level=3).compress(data)
    path.write_bytes(data)
    return path


def assert_matches(result: dict, exp: dict, *, malformed: int = 0) -> None:
    records = result["records"]
    assert records["in_window"] == exp["in_window"]
    assert records["before_window"] + records["after_window"] == exp["outside"]
    assert records["no_timestamp"] == exp["no_timestamp"]
    assert records["malformed"] == malformed
    assert result["levels"] == exp["levels"]
    assert result["errors"] == exp["errors"]
    req = result["requests"]
    assert req["total"] == exp["requests"]
    assert req["5xx"] == exp["5xx"]
    assert req["status_classes"].get("4xx", 0) == exp["4xx"]
    assert req["rate_5xx"] == pytest.approx(exp["5xx"] / exp["requests"] if exp["requests"] else 0.0)
    assert req["per_day"] == exp["per_day"]
    durations = exp["durations"]
    dur = result["duration"]
    assert dur["count"] == len(durations)
    if durations:
        assert dur["avg_ms"] == pytest.approx(sum(durations) / len(durations), rel=1e-9)
        assert dur["max_ms"] == pytest.approx(max(durations), rel=1e-9)
        for name, p in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
            assert dur[name] == pytest.approx(quantile(durations, p), rel=1e-3), name


def test_plain_json_figures_equal_independent_computation_over_last_24h(tmp_path):
    records = make_records(random.Random(1), 3000)
    # rotated: the older half zstd-compressed, the newer plain; pitfall: counting the whole file
    records.sort(key=lambda r: r.ts)
    write(tmp_path / "api-out__1.log.zst", [plain_line(r) for r in records[:1500]], "zstd")
    write(tmp_path / "api-out.log", [plain_line(r) for r in records[1500:]])
    result = analyze_paths([str(tmp_path / "api-out*.log*")], window="24h", now=NOW, by_route=True)
    exp = expected(records, NOW - timedelta(hours=24), NOW)
    assert 0 < exp["in_window"] < len(records)
    assert_matches(result, exp)
    routes = {r["route"]: r for r in result["routes"]}
    for route, recs in exp["routes"].items():
        assert routes[route]["requests"] == len(recs)
        assert routes[route]["5xx"] == sum(1 for r in recs if r.status >= 500)
        assert routes[route]["p95_ms"] == pytest.approx(quantile([r.dur_ms for r in recs], 0.95), rel=1e-3)


def test_pino_gzip_rotation_and_float_durations_match_within_a_tenth_of_a_percent(tmp_path):
    records = make_records(random.Random(2), 4000, float_durations=True)
    write(tmp_path / "app.log.1.gz", [pino_line(r) for r in records[:2000]], "gzip")
    write(tmp_path / "app.log", [pino_line(r) for r in records[2000:]])
    result = analyze_paths([str(tmp_path / "app.log*")], window="24h", now=NOW, by_route=True)
    assert_matches(result, expected(records, NOW - timedelta(hours=24), NOW))
    # raw URLs are grouped: ids and query strings dropped
    assert {r["route"] for r in result["routes"]} == {"/api/chat/:id", "/api/messages", "/api/search"}
    assert {f["compression"] for f in result["files"]} == {"gzip", "none"}


def test_heterogeneous_pino_and_plain_json_in_one_target_with_window_all(tmp_path):
    rnd = random.Random(3)
    pino, plain = make_records(rnd, 800), make_records(rnd, 700)
    write(tmp_path / "a.log", [pino_line(r) for r in pino])
    write(tmp_path / "b.log", [plain_line(r) for r in plain])
    result = analyze_paths([str(tmp_path / "a.log"), str(tmp_path / "b.log")], window="all", now=NOW)
    exp = expected(pino + plain, None, None)
    assert exp["in_window"] == 1500
    assert_matches(result, exp)


def test_an_analysis_runs_on_the_database_opened_ahead_with_its_own_settings_and_the_same_figures(tmp_path):
    """logs.analyze preloads ``engine.open_ahead`` (a foreground worker opens DuckDB's database while
    the run is created): the next analysis takes that database, sets its memory limit and spill
    directory on it, and finds what a database opened for it finds."""
    from upkeep.handlers.logs.parse import engine

    records = make_records(random.Random(9), 2000)
    write(tmp_path / "app.log", [pino_line(r) for r in records])
    engine.open_ahead()
    ahead = analyze_paths([str(tmp_path / "app.log")], window="24h", now=NOW, by_route=True)
    assert engine._ahead is None  # taken by that analysis
    opened = analyze_paths([str(tmp_path / "app.log")], window="24h", now=NOW, by_route=True)
    assert ahead == opened
    assert_matches(ahead, expected(records, NOW - timedelta(hours=24), NOW))
    engine.open_ahead()
    con = engine.connect("100MB", str(tmp_path / "spill"))
    try:
        settings = con.execute("SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchone()
        assert settings == ("95.3 MiB", str(tmp_path / "spill"))  # DuckDB's MB are 10^6 bytes
    finally:
        con.close()


def test_the_database_closes_behind_the_figures_and_its_spill_directory_goes_with_it(tmp_path, monkeypatch):
    """An analysis returns its figures while a thread closes DuckDB's database (freeing the scan's
    memory) and then removes the spill directory; not a daemon thread, so a process ending waits."""
    import tempfile
    import threading

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    records = make_records(random.Random(11), 500)
    write(tmp_path / "app.log", [pino_line(r) for r in records])
    result = analyze_paths([str(tmp_path / "app.log")], window="all", now=NOW)
    assert result["records"]["total"] == len(records)
    closers = [t for t in threading.enumerate() if t.name == "duckdb-close"]
    assert all(not t.daemon for t in closers)
    for thread in closers:
        thread.join(30)
    assert list(scratch.iterdir()) == []


def test_combined_access_log_request_time_seconds_become_milliseconds(tmp_path):
    records = make_records(random.Random(4), 2000)
    for r in records:
        r.level = None
    write(tmp_path / "access.log", [combined_line(r) for r in records] + ["this is not an access log line"])
    result = analyze_paths([str(tmp_path / "access.log")], window="24h", now=NOW)
    exp = expected(records, NOW - timedelta(hours=24), NOW)
    exp["durations"] = [round(d / 1000, 3) * 1000 for d in exp["durations"]]
    assert_matches(result, exp, malformed=1)
    assert result["files"][0]["format"] == "combined"
    assert result["duration"]["max_ms"] == pytest.approx(max(exp["durations"]))


def test_text_and_structlog_levels_counted_in_window_and_lines_without_time_kept_apart(tmp_path):
    rnd = random.Random(5)
    text = make_records(rnd, 600, with_requests=False)
    text += [Rec(None, None) for _ in range(7)]  # stack-trace continuation lines
    structlog = make_records(rnd, 500, with_requests=False)
    structlog += [Rec(None, "error", msg="no time here")]
    write(tmp_path / "worker.log", [text_line(r) for r in text])
    write(tmp_path / "struct.log.gz", [structlog_line(r) for r in structlog], "gzip")
    result = analyze_paths([str(tmp_path / "worker.log"), str(tmp_path / "struct.log.gz")], now=NOW)
    exp = expected(text + structlog, NOW - timedelta(hours=24), NOW)
    assert_matches(result, exp)
    assert exp["no_timestamp"] == 8


def test_error_messages_group_across_numbers_uuids_and_hex(tmp_path):
    lines = []
    for i in range(30):
        ts = iso(NOW - timedelta(minutes=i))
        lines.append(
            json.dumps(
                {
                    "level": "error",
                    "time": ts,
                    "msg": f"order {1000 + i} failed: request 3f2b8c1e-5d4a-4b7e-9c2d-{i:012d} at 0x7f{i:06x}",
                }
            )
        )
        if i % 3 == 0:  # half of them with runs of blanks, tabs and a trailing newline: one group still
            text = f"disk full on /dev/sd{i}" if i % 2 else f"disk  full\ton \t/dev/sd{i}\n"
            lines.append(json.dumps({"level": "fatal", "time": ts, "msg": text}))
        lines.append(json.dumps({"level": "info", "time": ts, "msg": f"order {i} ok"}))
    write(tmp_path / "e.log", lines)
    result = analyze_paths([str(tmp_path / "e.log")], now=NOW, top_errors=5)
    top = result["top_errors"]
    assert [t["count"] for t in top] == [30, 10]
    assert top[0]["message"] == "order <n> failed: request <uuid> at <hex>"
    assert top[0]["example"].startswith("order 10")
    assert top[1]["message"] == "disk full on /dev/sd<n>"
    assert result["errors"] == 40


def test_top_errors_and_error_count_share_one_definition_of_an_error_level(tmp_path):
    levels = {
        # raw level -> is it an error (as normalise_level says)
        "Error": True,
        " ERROR ": True,
        "55": True,
        "1e2": True,
        "crit": True,
        "Panic": True,
        "Exception": False,
        "inf": False,
        "notice": False,
        "30": False,
        "49.9": False,
        "": False,
    }
    lines = []
    for n, (raw, _) in enumerate(levels.items()):
        for i in range(n + 1):  # a distinct count per level, so a wrong grouping shows
            lines.append(
                json.dumps(
                    {
                        "level": raw,
                        "time": iso(NOW - timedelta(minutes=i)),
                        "msg": f"{'bad' if levels[raw] else 'fine'} thing {i} at level {raw!r}",
                    }
                )
            )
    write(tmp_path / "levels.log", lines)
    result = analyze_paths([str(tmp_path / "levels.log")], now=NOW, top_errors=50)
    expected_errors = sum(n + 1 for n, (_, is_error) in enumerate(levels.items()) if is_error)
    assert result["errors"] == expected_errors
    assert sum(t["count"] for t in result["top_errors"]) == expected_errors
    assert all(t["example"].startswith("bad thing") for t in result["top_errors"])
    assert "inf" in result["levels"] and "fatal" in result["levels"]
    assert result["levels"]["fatal"] == 4 + 5 + 6  # 1e2 (100), crit, Panic


def test_malformed_lines_empty_files_and_unmatched_globs_are_reported_not_fatal(tmp_path):
    good = [json.dumps({"level": "info", "time": iso(NOW - timedelta(minutes=5)), "msg": "ok", "statusCode": 200})]
    write(tmp_path / "x.log", good + ["{not json", "\x00\x01 binary junk", '{"level": "info", "time": '] + good)
    (tmp_path / "empty.log").write_bytes(b"")
    result = analyze_paths([str(tmp_path / "*.log"), str(tmp_path / "nothing-*.log")], now=NOW)
    assert result["records"]["in_window"] == 2
    assert result["records"]["malformed"] == 3
    assert result["missing"] == [str(tmp_path / "nothing-*.log")]
    assert {f["format"] for f in result["files"]} == {"json", "empty"}


def test_handler_default_window_is_last_24h_by_the_records_own_time(sqlite_store, tmp_path):
    lines = []
    for hours_ago in (1, 2, 30, 50, 200):  # the seed counted all five
        lines.append(
            json.dumps({"level": "ERROR", "timestamp": iso(NOW - timedelta(hours=hours_ago)), "message": "boom"})
        )
    write(tmp_path / "api-out.log", lines)
    result = run_handler(sqlite_store, "logs.analyze", {"paths": [str(tmp_path / "api-out.log")]}, clock=FakeClock(NOW))
    analysis = result["targets"]["paths"]
    assert analysis["errors"] == 2
    assert analysis["records"]["before_window"] == 3
    assert result["outcome"] == "ok"
    week = run_handler(
        sqlite_store, "logs.analyze", {"paths": [str(tmp_path / "api-out.log")], "window": "7d"}, clock=FakeClock(NOW)
    )
    assert week["targets"]["paths"]["errors"] == 4


def test_per_route_figures_only_when_the_handler_is_asked_for_them(sqlite_store, tmp_path):
    records = make_records(random.Random(5), 600)
    write(tmp_path / "api.log", [pino_line(r) for r in records])
    config = {"paths": [str(tmp_path / "api.log")], "window": "24h"}
    plain = run_handler(sqlite_store, "logs.analyze", config, clock=FakeClock(NOW))["targets"]["paths"]
    routed = run_handler(
        sqlite_store, "logs.analyze", {**config, "by_route": True, "top_routes": 2}, clock=FakeClock(NOW)
    )
    routed = routed["targets"]["paths"]
    assert plain["routes"] == []
    exp = expected(records, NOW - timedelta(hours=24), NOW)["routes"]
    busiest = sorted(exp, key=lambda route: (-len(exp[route]), route))[:2]
    assert [(r["route"], r["requests"]) for r in routed["routes"]] == [
        (route.replace("/api/chat", "/api/chat/:id"), len(exp[route])) for route in busiest
    ]
    # the other figures do not depend on it
    for key in ("records", "levels", "errors", "requests", "duration", "top_errors"):
        assert plain[key] == routed[key], key


def _request_lines(n: int, n5xx: int, dur_ms: float) -> list[str]:
    return [
        json.dumps(
            {
                "level": "info",
                "time": iso(NOW - timedelta(minutes=1 + i % 600)),
                "statusCode": 503 if i < n5xx else 200,
                "durationMs": dur_ms,
                "route": "/r",
            }
        )
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("n5xx", "dur", "extra", "outcome", "checks"),
    [
        (0, 100, {}, "ok", set()),
        (2, 100, {}, "warning", {"rate_5xx"}),  # 2 %
        (6, 100, {}, "critical", {"rate_5xx"}),  # 6 %
        (0, 600, {}, "warning", {"p95"}),
        (0, 2500, {}, "critical", {"p95"}),
        (0, 2500, {"p95_critical_ms": None}, "warning", {"p95"}),
        (0, 100, {"errors_warn": 1}, "ok", set()),
    ],
)
def test_thresholds_set_the_outcome(sqlite_store, tmp_path, n5xx, dur, extra, outcome, checks):
    write(tmp_path / "api.log", _request_lines(100, n5xx, dur))
    targets = {"logs": {"api": {"paths": [str(tmp_path / "api.log")], **extra}}}
    result = run_handler(sqlite_store, "logs.analyze", {}, targets=targets, clock=FakeClock(NOW))
    assert result["outcome"] == outcome
    assert {f["check"] for f in result["findings"] if f["severity"] != "info"} == checks
    assert result["targets"]["api"]["requests"]["total"] == 100


def test_error_count_thresholds_and_missing_target_files(sqlite_store, tmp_path):
    lines = [
        json.dumps({"level": 50, "time": int((NOW - timedelta(minutes=i)).timestamp() * 1000), "msg": "x"})
        for i in range(12)
    ]
    write(tmp_path / "w.log", lines)
    config = {"paths": [str(tmp_path / "w.log"), str(tmp_path / "gone-*.log")], "errors_warn": 5, "errors_critical": 10}
    result = run_handler(sqlite_store, "logs.analyze", config, clock=FakeClock(NOW))
    assert result["outcome"] == "critical"
    checks = {f["check"]: f["severity"] for f in result["findings"]}
    assert checks == {"errors": "critical", "missing": "warning"}


def test_an_analysis_whose_globs_match_no_file_fails_naming_them(sqlite_store, tmp_path):
    """Nothing read is no news: the run fails (an alert), not "completed, 0 errors"."""
    missing = [str(tmp_path / "none*.log"), str(tmp_path / "gone.log")]
    with pytest.raises(UserError, match="nothing was analysed") as refused:
        run_handler(sqlite_store, "logs.analyze", {"paths": missing}, clock=FakeClock(NOW))
    assert all(pattern in str(refused.value) for pattern in missing)


def test_a_target_whose_globs_match_nothing_says_so_in_the_summary(sqlite_store, tmp_path):
    write(tmp_path / "api.log", _request_lines(5, 5, 10))
    targets = {"logs": {"api": {"paths": [str(tmp_path / "api.log")]}, "web": {"paths": [str(tmp_path / "w*.log")]}}}
    result = run_handler(sqlite_store, "logs.analyze", {}, targets=targets, clock=FakeClock(NOW))
    assert result["outcome"] == "warning"
    assert f"web: no log file matches {tmp_path / 'w*.log'}" in result["summary"]
    assert result["summary"].startswith("api: 0 errors")


def test_few_requests_give_no_rate_verdict_and_bad_config_is_a_clear_error(sqlite_store, tmp_path):
    write(tmp_path / "api.log", _request_lines(5, 5, 10))
    result = run_handler(sqlite_store, "logs.analyze", {"paths": [str(tmp_path / "api.log")]}, clock=FakeClock(NOW))
    assert result["outcome"] == "ok"
    strict = run_handler(
        sqlite_store, "logs.analyze", {"paths": [str(tmp_path / "api.log")], "min_requests": 1}, clock=FakeClock(NOW)
    )
    assert strict["outcome"] == "critical"
    with pytest.raises(ConfigError, match="window"):
        run_handler(
            sqlite_store,
            "logs.analyze",
            {"paths": [str(tmp_path / "api.log")], "window": "yesterday"},
            clock=FakeClock(NOW),
        )
    with pytest.raises(ConfigError, match="nothing to read"):
        run_handler(sqlite_store, "logs.analyze", {}, clock=FakeClock(NOW))
    with pytest.raises(ConfigError, match="targets.logs.api"):
        run_handler(
            sqlite_store,
            "logs.analyze",
            {},
            targets={"logs": {"api": {"paths": ["x"], "bogus": 1}}},
            clock=FakeClock(NOW),
        )


def test_naive_timestamps_follow_the_configured_time_zone(tmp_path):
    # 11:30 in New York (UTC-5 in November) is 16:30 UTC: after NOW, so outside a window ending now
    write(tmp_path / "t.log", ["2026-11-20 11:30:00 ERROR late", "2026-11-20 06:30:00 ERROR early"])
    utc = analyze_paths([str(tmp_path / "t.log")], now=NOW)
    ny = analyze_paths([str(tmp_path / "t.log")], now=NOW, timezone="America/New_York")
    assert utc["errors"] == 2
    assert ny["errors"] == 1 and ny["records"]["after_window"] == 1


def test_explicit_since_until_and_configured_duration_field(tmp_path):
    lines = [
        json.dumps(
            {"level": "info", "ts": iso(NOW - timedelta(hours=h)), "status": 200, "took_s": 0.25 * h, "durationMs": 1}
        )
        for h in range(1, 11)
    ]
    write(tmp_path / "d.log", lines)
    result = analyze_paths(
        [str(tmp_path / "d.log")],
        now=NOW,
        window=None,
        since=NOW - timedelta(hours=4.5),
        until=NOW - timedelta(hours=1.5),
        duration_field="took_s",
        duration_unit="s",
    )
    assert result["requests"]["total"] == 3  # 2, 3 and 4 hours ago
    assert result["duration"]["avg_ms"] == pytest.approx(750.0)
    assert result["duration"]["max_ms"] == pytest.approx(1000.0)


@pytest.mark.parametrize(
    ("url", "route"),
    [
        ("/api/users/42", "/api/users/:id"),
        ("/api/users/42/", "/api/users/:id/"),
        ("/a/1/2", "/a/:id/:id"),
        ("/a/1/2/", "/a/:id/:id/"),
        ("/a/1/2/3/b", "/a/:id/:id/:id/b"),
        ("/1/2/3/4/5", "/:id/:id/:id/:id/:id"),
        ("/a/1//2", "/a/:id//:id"),
        ("/x/deadbeefdeadbeef/12ab", "/x/:id/12ab"),
        ("/v2/files/0123456789abcdef01/raw?x=1#top", "/v2/files/:id/raw"),
        ("/c/8f14e45f-ceea-467f-a0e6-0b1a2c3d4e5f/messages", "/c/:id/messages"),
        ("https://api.example.com:8443/api/orders/77?page=2", "/api/orders/:id"),
        ("/api/v2/health", "/api/v2/health"),
        ("/api/abc123/x", "/api/abc123/x"),  # not an id: a word with digits
        ("/api//x", "/api//x"),
        ("/", "/"),
        ("/7", "/:id"),
    ],
)
def test_raw_urls_group_by_route_with_id_segments_replaced(tmp_path, url, route):
    record = {"level": 30, "time": int(NOW.timestamp() * 1000), "req": {"url": url}, "res": {"statusCode": 200}}
    lines = [json.dumps(record)]
    result = analyze_paths([str(write(tmp_path / "app.log", lines))], window="all", now=NOW, by_route=True)
    assert [r["route"] for r in result["routes"]] == [route]


ID_SEGMENT_PY = re.compile(
    r"[0-9]+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{16,}"
)


def route_of(url: str) -> str:
    """The route of a raw URL, written out: path only, every whole id segment replaced by ``:id``."""
    path = re.split(r"[?#]", url, maxsplit=1)[0]
    path = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*", "", path)
    return "/".join(":id" if ID_SEGMENT_PY.fullmatch(part) else part for part in path.split("/"))[:200]


def random_url(rnd: random.Random) -> str:
    uuid = "-".join("".join(rnd.choice("0123456789abcdef") for _ in range(n)) for n in (8, 4, 4, 4, 12))
    return rnd.choice(
        [
            "/api/chat",
            f"/api/users/{rnd.randint(1, 40)}",
            f"/api/users/{rnd.randint(1, 40)}/",
            f"/api/conversations/{uuid}/messages",
            f"/api/messages?limit={rnd.choice([20, 50])}",
            f"/api/files/{rnd.randint(1, 9)}/{rnd.randint(1, 9)}/download#part",
            f"https://api.example.com/api/orders/{rnd.randint(1, 99)}?page=2",
            f"/v2/blobs/{rnd.randbytes(10).hex()}",
            "/api/abc123/x",
            f"/{rnd.randint(0, 9)}",
        ]
    )


@pytest.mark.parametrize("fmt", ["json", "combined"])
def test_per_route_figures_equal_an_independent_computation_over_raw_urls(tmp_path, fmt):
    rnd = random.Random(9)
    records = make_records(rnd, 3000)
    urls = [random_url(rnd) for _ in records]
    if fmt == "json":
        lines = [
            json.dumps({**json.loads(pino_line(r)), "req": {"method": "GET", "url": url}})
            for r, url in zip(records, urls, strict=True)
        ]
    else:
        lines = [
            combined_line(r).replace(f"GET {r.route}?page=2 ", f"GET {url} ")
            for r, url in zip(records, urls, strict=True)
        ]
    write(tmp_path / "api.log", lines)
    result = analyze_paths([str(tmp_path / "api.log")], window="all", now=NOW, by_route=True, top_routes=1000)
    assert result["files"][0]["format"] == fmt
    unit = 1000.0 if fmt == "combined" else 1.0  # an access log's request time is in seconds, 3 decimals
    by_route: dict[str, list[Rec]] = {}
    for r, url in zip(records, urls, strict=True):
        r.dur_ms = round(r.dur_ms / unit, 3) * unit if fmt == "combined" else r.dur_ms
        by_route.setdefault(route_of(url), []).append(r)
    routes = {r["route"]: r for r in result["routes"]}
    assert set(routes) == set(by_route)
    assert "/api/users/:id/" in routes and "/api/files/:id/:id/download" in routes and "/v2/blobs/:id" in routes
    for route, recs in by_route.items():
        got = routes[route]
        assert got["requests"] == len(recs), route
        assert got["5xx"] == sum(1 for r in recs if r.status >= 500), route
        assert got["avg_ms"] == pytest.approx(sum(r.dur_ms for r in recs) / len(recs), rel=1e-9), route
        assert got["p95_ms"] == pytest.approx(quantile([r.dur_ms for r in recs], 0.95), rel=1e-3), route


def test_a_route_field_is_kept_as_written_and_a_url_field_normalised_in_one_file(tmp_path):
    base = {"level": "info", "time": iso(NOW - timedelta(minutes=5)), "statusCode": 200, "durationMs": 5}
    lines = [
        json.dumps({**base, "route": "/api/users/:userId", "url": "/api/users/7"}),
        json.dumps({**base, "route": "/api/users/7", "url": "/api/users/8?x=1"}),  # a route as the app named it
        json.dumps({**base, "url": "/api/users/9?x=1"}),  # no route field: the URL, normalised
    ]
    result = analyze_paths([str(write(tmp_path / "app.log", lines))], window="all", now=NOW, by_route=True)
    assert sorted((r["route"], r["requests"]) for r in result["routes"]) == [
        ("/api/users/7", 1),
        ("/api/users/:id", 1),
        ("/api/users/:userId", 1),
    ]

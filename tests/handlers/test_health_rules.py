"""The pure parts of health.check: the JSONPath subset, flap damping, the records summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from upkeep.handlers.health.check import summarize_health_records, summary_line
from upkeep.handlers.health.probes import jsonpath
from upkeep.handlers.health.probes.base import CheckResult
from upkeep.handlers.health.probes.damping import apply

DOC = {
    "status": "healthy",
    "db": {"pool": {"free": 3}},
    "items": [{"id": 1}, {"id": 2}],
    "ok": True,
    "weird-key": "x",
    "n": None,
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('$.status == "healthy"', True),
        ("$.status == 'healthy'", True),
        ('$.status != "healthy"', False),
        ('$.status in ["healthy", "degraded"]', True),
        ('$.status not in ["healthy"]', False),
        ("$.db.pool.free > 2", True),
        ("$.db.pool.free <= 2", False),
        ("$.items[1].id == 2", True),
        ("$.items[-1].id == 2", True),
        ("$.items[5].id == 2", False),
        ('$["weird-key"] == "x"', True),
        ("$.ok == true", True),
        ("$.ok == 1", False),
        ("$.status > 1", False),
        ("$.ok", True),
        ("$.n", False),
        ("$.missing", False),
    ],
)
def test_jsonpath_subset(expression, expected):
    assert jsonpath.parse(expression).evaluate(DOC)[0] is expected


def test_jsonpath_never_matches_unhealthy_for_healthy():
    passed, why = jsonpath.parse('$.status == "healthy"').evaluate({"status": "unhealthy"})
    assert not passed
    assert why == '$.status is "unhealthy", expected == "healthy"'


@pytest.mark.parametrize("bad", ["status", "$.status == healthy", "$.status ~ 1", '$.a in "x"'])
def test_jsonpath_rejects_what_it_cannot_read(bad):
    with pytest.raises(jsonpath.JsonPathError):
        jsonpath.parse(bad).evaluate({"status": "x", "a": "x"})


def _observe(record, status, at, n=3, m=2):
    return apply(record, CheckResult("api", "http", status, f"saw {status}"), at, n, m)


def test_damping_needs_n_failures_and_m_successes():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    record, reported, _ = _observe(None, "ok", t)
    assert reported == "ok" and record["since"] == t.isoformat()
    seen = []
    for i in range(3):
        record, reported, note = _observe(record, "critical", t + timedelta(minutes=i + 1))
        seen.append((reported, note))
    assert seen == [
        ("warning", "failure 1 of 3 before critical"),
        ("warning", "failure 2 of 3 before critical"),
        ("critical", ""),
    ]
    assert record["since"] == (t + timedelta(minutes=3)).isoformat()
    record, reported, note = _observe(record, "warning", t + timedelta(minutes=4))
    assert (reported, note) == ("critical", "recovering: 1 of 2 successes")
    record, reported, _ = _observe(record, "critical", t + timedelta(minutes=5))
    assert reported == "critical" and record["consecutive_successes"] == 0
    record, _, _ = _observe(record, "ok", t + timedelta(minutes=6))
    record, reported, _ = _observe(record, "ok", t + timedelta(minutes=7))
    assert reported == "ok" and record["previous_status"] == "critical"
    assert record["last_failure"] == (t + timedelta(minutes=5)).isoformat()
    assert record["checks"] == 8


def test_default_thresholds_report_at_once():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    record, reported, _ = _observe(None, "critical", t, 1, 1)
    assert reported == "critical"
    _, reported, _ = _observe(record, "ok", t, 1, 1)
    assert reported == "ok"


def test_summary_line_and_records_summary():
    assert summary_line([]) == "no targets"
    entries = [(f"s{i}", "ok", "fine") for i in range(11)] + [("api", "critical", "HTTP 500")]
    assert summary_line(entries) == "12 targets: 11 ok, 1 critical (api: HTTP 500)"
    t = datetime(2026, 1, 1, tzinfo=UTC)
    items = []
    for name, status in (("a", "ok"), ("b", "warning"), ("c", "critical")):
        record, _, _ = apply(None, CheckResult(name, "tcp", status, f"{name} is {status}"), t, 1, 1)
        items.append((f"target/{name}", record))
    items.append(("target/junk", {"not": "a record"}))
    out = summarize_health_records(items)
    assert out["counts"] == {"ok": 1, "warning": 1, "critical": 1}
    assert [p["name"] for p in out["problems"]] == ["c", "b"]
    assert out["summary"] == "3 targets: 1 ok, 1 warning, 1 critical (c: c is critical; b: b is warning)"
    assert summarize_health_records([])["summary"] == "no health targets recorded"

"""The admin UI's pages, login session and CSRF protection (HTTP level; the browser test drives it)."""

from __future__ import annotations

import re
import stat
from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import Field

from upkeep.engine.registry import HandlerConfig, overridable
from upkeep.web.forms import fields_from_schema


def login(api, role="admin", next_url="/"):
    page = api.client.get("/login")
    assert page.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return api.client.post("/login", data={"token": api.tokens[role], "csrf_token": token, "next": next_url})


def csrf_of(html: str) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]*)"', html).group(1)


def test_pages_redirect_to_login_and_a_key_opens_an_httponly_strict_session(api):
    assert api.client.get("/tasks?enabled=true").headers["location"] == "/login?next=/tasks%3Fenabled%3Dtrue"
    response = login(api, next_url="/tasks")
    assert response.status_code == 303 and response.headers["location"] == "/tasks"
    cookie = response.headers["set-cookie"]
    assert "upkeep_session=" in cookie and "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert api.tokens["admin"] not in cookie
    page = api.client.get("/")
    assert page.status_code == 200 and "Dashboard" in page.text and "admin-key" in page.text
    key_file = api.settings.resolved_data_dir / "session.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_login_needs_the_form_token_and_a_valid_key(api):
    no_csrf = api.client.post("/login", data={"token": api.tokens["admin"], "csrf_token": "x"})
    assert "error=expired" in no_csrf.headers["location"] and "set-cookie" not in no_csrf.headers
    page = api.client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    bad = api.client.post("/login", data={"token": "upk_1234_wrong", "csrf_token": token})
    assert "error=invalid" in bad.headers["location"]
    evil = login(api, next_url="//evil.example/")
    assert evil.headers["location"] == "/"


def test_session_requests_that_change_something_need_the_csrf_token(api):
    api.upkeep.create_task({"name": "t", "type": "debug.noop"}, actor="test")
    login(api)
    csrf = csrf_of(api.client.get("/tasks").text)
    refused = api.client.post("/api/v1/scheduled-tasks/t/disable")
    assert refused.status_code == 403 and refused.json()["field"] == "X-CSRF-Token"
    wrong = api.client.post("/api/v1/scheduled-tasks/t/disable", headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403
    ok = api.client.post("/api/v1/scheduled-tasks/t/disable", headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200 and ok.json()["enabled"] is False
    me = {"name": "admin-key", "role": "admin", "via": "session", "kind": "key", "timezone": None}
    assert api.client.get("/api/v1/me").json() == me
    entry = api.upkeep.list_audit(limit=1)[0][0]
    assert (entry["actor"], entry["action"]) == ("key:admin-key", "disable")
    logout = api.client.post("/logout", data={"csrf_token": csrf})
    assert logout.status_code == 303
    api.client.cookies.clear()
    assert api.client.get("/").status_code == 303


def test_revoking_the_key_ends_its_sessions(api):
    login(api, role="operator")
    assert api.client.get("/").status_code == 200
    api.delete("/api/v1/keys/operator-key")
    assert api.client.get("/").status_code == 303


def test_viewer_sees_no_operator_controls_and_admin_pages_are_forbidden(api):
    api.upkeep.create_task({"name": "t", "type": "debug.sleep"}, actor="test")
    login(api, role="viewer")
    page = api.client.get("/tasks/t").text
    assert "Run now" not in page and "Save configuration" not in page and 'id="run-dialog"' not in page
    for path, what in (("/keys", "the key page"), ("/users", "the accounts page"), ("/tasks/new", "creating tasks")):
        refused = api.client.get(path)
        assert refused.status_code == 403 and f"{what} needs the admin role" in refused.text, path
        assert "Forbidden" in refused.text, path


def test_task_page_shows_schedule_next_times_generated_config_form_chart_and_runs(api):
    api.upkeep.create_task(
        {
            "name": "t",
            "type": "debug.sleep",
            "schedule": "0 3 * * *",
            "timezone": "Europe/Zagreb",
            "description": "Nightly nap",
            "config": {"seconds": 2, "outcome": "warning"},
        },
        actor="test",
    )
    api.upkeep.trigger("t", actor="test")
    login(api)
    html = api.client.get("/tasks/t").text
    assert "Nightly nap" in html
    # the next slots in the schedule's own zone, named, with how far away they are; the zone's name
    # follows each slot's date (CEST from late March to late October), not a fixed "CET"
    slots = re.findall(
        r'<li><span class="when"><time datetime="([^"]+)" data-tz="Europe/Zagreb"[^>]*>([^<]+)</time>'
        r' <span class="rel">in ',
        html,
    )
    zagreb = ZoneInfo("Europe/Zagreb")
    local = [datetime.fromisoformat(at).astimezone(zagreb) for at, _ in slots]
    assert len(slots) == 5 and all(f"{t:%H:%M:%S}" == "03:00:00" for t in local), slots
    assert [shown for _, shown in slots] == [f"{t:%Y-%m-%d %H:%M:%S %Z}" for t in local], slots
    assert {f"{t:%Z}" for t in local} <= {"CET", "CEST"}, slots
    assert 'id="f-config-seconds"' in html and 'type="number"' in html and 'value="2"' in html
    assert 'id="f-config-busy"' in html and 'type="checkbox"' in html
    assert 'data-error-for="config.seconds"' in html and "overridable" in html
    assert "<svg" in html and 'href="/runs/1"' in html


def test_live_fragments_return_only_the_refreshing_part(api):
    api.upkeep.create_task({"name": "t", "type": "debug.noop"}, actor="test")
    login(api)
    fragment = api.client.get("/tasks", headers={"X-Fragment": "1"}).text
    assert "<html" not in fragment and 'data-task-row="t"' in fragment
    dashboard = api.client.get("/", headers={"X-Fragment": "1"}).text
    assert "<html" not in dashboard and 'data-stat="tasks">1<' in dashboard


def test_pages_for_unknown_objects_are_404_pages(api):
    login(api)
    assert api.client.get("/tasks/nope").status_code == 404
    assert api.client.get("/runs/12345").status_code == 404
    assert api.client.get("/runs/abc").status_code == 404


def test_handler_reference_lists_fields_with_type_default_and_overridable_marker(api):
    login(api)
    html = api.client.get("/handlers").text
    section = html[html.index('id="h-debug.sleep"') :]
    section = section[: section.index("</section>")]
    assert '<code>seconds</code> <span class="tag">overridable</span>' in section
    assert "How long to sleep" in section and "<code>1.0</code>" in section


class Nested(HandlerConfig):
    depth: int = 1


class Sample(HandlerConfig):
    name: str = Field(description="A name")
    count: int = overridable(3, ge=1, le=9)
    ratio: float | None = None
    mode: str = Field("fast", json_schema_extra={"enum": ["fast", "slow"]})
    flag: bool = False
    items: list[str] = Field(default_factory=list)
    nested: Nested = Field(default_factory=Nested)
    api_token: str = ""


def test_form_fields_are_generated_per_json_schema_type():
    fields = {
        f.name: f
        for f in fields_from_schema(
            Sample.model_json_schema(), {"items": [], "nested": {"depth": 1}, "count": 5, "api_token": "***"}
        )
    }
    assert fields["name"].kind == "string" and fields["name"].required
    assert fields["count"].kind == "integer" and fields["count"].text == "5" and fields["count"].overridable
    assert fields["count"].attrs == {"step": "1", "min": 1, "max": 9}
    assert fields["ratio"].kind == "number" and fields["ratio"].nullable and fields["ratio"].text == ""
    assert fields["mode"].kind == "enum" and fields["mode"].options == ["fast", "slow"]
    assert fields["flag"].kind == "boolean"
    assert fields["items"].kind == "json" and fields["items"].text == "[]"
    assert fields["nested"].kind == "json" and '"depth": 1' in fields["nested"].text
    assert fields["api_token"].kind == "secret"
    assert fields["count"].path == "config.count" and fields["count"].dom_id == "f-config-count"


class Durations(HandlerConfig):
    timeout_seconds: float = 5400.0
    keep_days: int = 30
    p95_warn_ms: float | None = 2000.0
    window: str = Field("24h", description="Time window back from now: '30m', '24h', '7d' or 'all'.")
    due_within: str | None = Field(None, description="Due this long after it opens (e.g. 3d).")
    label: str = Field("x", description="A label")


def test_durations_get_a_unit_or_a_duration_hint_instead_of_a_bare_number_or_text():
    fields = {f.name: f for f in fields_from_schema(Durations.model_json_schema(), Durations().model_dump())}
    timeout = fields["timeout_seconds"]
    assert (timeout.kind, timeout.text, timeout.unit, timeout.default_shown) == ("duration", "90", 60.0, "1 h 30 min")
    assert [label for label, _ in timeout.units] == ["s", "min", "h", "d"]
    days = fields["keep_days"]  # an integer: only its own unit and larger ones, whole numbers
    assert (days.kind, days.text, days.units, days.attrs["step"]) == ("duration", "30", [("d", 86400.0)], "1")
    warn = fields["p95_warn_ms"]
    assert (warn.kind, warn.text, warn.unit, warn.nullable) == ("duration", "2", 1.0, True)
    assert (fields["window"].kind, fields["window"].options) == ("duration_text", ["all"])
    assert fields["due_within"].kind == "duration_text" and fields["label"].kind == "string"


def test_the_new_task_form_shows_duration_units_and_hints(api):
    login(api)
    page = api.client.get("/tasks/new?type=logs.analyze").text
    assert re.search(r'<select id="f-config-p95_warn_ms-unit" data-unit-for="f-config-p95_warn_ms"', page)
    assert 'data-kind="duration_text" data-words="all"' in page and 'id="f-config-window-reads"' in page
    assert "A duration such as 90s, 10m, 4h, 2d or 1h30m." in page


def _finish(api, run_id: int, **fields) -> None:
    """A run as a worker leaves it when it ends (the lifecycle's own writes are tested in engine/)."""
    from datetime import UTC, datetime

    from upkeep.store.models import Run

    now = datetime.now(UTC)
    with api.store.write() as s:
        run = s.get(Run, run_id)
        run.started_at, run.finished_at = now, now
        for key, value in fields.items():
            setattr(run, key, value)


def test_a_finished_run_shows_no_working_progress_bar_and_no_stale_step_text(api):
    api.upkeep.create_task({"name": "steps", "type": "debug.fail"}, actor="test")
    failed = api.upkeep.trigger("steps", actor="test")["id"]
    _finish(api, failed, status="failed", error="boom", progress=None, progress_message="step 3 of 5: copying")
    done = api.upkeep.trigger("steps", actor="test")["id"]
    _finish(api, done, status="completed", outcome="ok", progress=0.6, progress_message="step 3 of 5: copying")
    running = api.upkeep.trigger("steps", actor="test")["id"]
    _finish(api, running, status="running", finished_at=None, progress=None, progress_message="step 1 of 5")
    login(api)
    bar = re.compile(r"<progress [^>]*>")
    page = api.client.get(f"/runs/{failed}").text
    assert "hidden" in bar.search(page).group(0) and "value=" not in bar.search(page).group(0)
    assert "step 3 of 5" not in page
    page = api.client.get(f"/runs/{done}").text
    assert 'value="1"' in bar.search(page).group(0) and "step 3 of 5" not in page
    page = api.client.get(f"/runs/{running}").text  # still working: indeterminate bar and its step
    assert "hidden" not in bar.search(page).group(0) and "step 1 of 5" in page


def test_task_list_shows_last_run_time_duration_and_the_last_20_outcomes(api):
    api.upkeep.create_task({"name": "t", "type": "debug.noop"}, actor="test")
    kinds = ["ok"] * 20 + ["critical", "failed", "warning"]
    for kind in kinds:
        run_id = api.upkeep.trigger("t", actor="test")["id"]
        if kind == "failed":
            _finish(api, run_id, status="failed", error="boom")
        else:
            _finish(api, run_id, status="completed", outcome=kind)
    login(api)
    html = api.client.get("/tasks").text
    strip = re.search(r'<svg class="strip"[^>]*aria-label="([^"]+)"', html).group(1)
    assert strip == "last 20 runs: 17 ok, 1 critical, 1 failed, 1 warning"
    assert html.count('class="bar s-failed"') == 1 and html.count('class="bar s-critical"') == 1


def test_dashboard_charts_runs_per_day_by_outcome(api):
    api.upkeep.create_task({"name": "t", "type": "debug.noop"}, actor="test")
    for status, outcome in [("completed", "ok"), ("completed", "ok"), ("completed", "critical"), ("failed", None)]:
        _finish(api, api.upkeep.trigger("t", actor="test")["id"], status=status, outcome=outcome)
    login(api)
    html = api.client.get("/", headers={"X-Fragment": "1"}).text
    label = re.search(r'<svg class="chart"[^>]*aria-label="(Runs per day[^"]+)"', html).group(1)
    assert label == "Runs per day over the last 30 days by outcome: 4 runs, at most 4 a day"
    assert [html.count(f'class="bar s-{k}"') for k in ("ok", "critical", "failed", "warning")] == [1, 1, 1, 0]


def test_relative_times_use_the_largest_unit_that_fits():
    from datetime import UTC, datetime

    from upkeep.web.render import fmt_relative

    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    said = {
        "2026-12-05T12:03:00+00:00": "in 3 min",
        "2026-12-05T10:00:00+00:00": "2 h ago",
        "2026-12-05T10:30:00+00:00": "90 min ago",
        "2026-12-08T12:00:00+00:00": "in 3 d",
        "2026-12-05T11:59:50+00:00": "just now",
        "2024-12-05T12:00:00+00:00": "2 y ago",
    }
    assert {value: fmt_relative(value, now) for value in said} == said

"""Reports: the digest from a real store, `upkeep report` (markdown, HTML opened in headless Chromium)
and report.send through a real apprise channel to a local HTTP receiver."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from support.contexts import run_handler
from upkeep.app.run_services import RunServices
from upkeep.cli.main import app
from upkeep.clock import FakeClock
from upkeep.errors import UserError
from upkeep.handlers.trends.capacity import GIB, store_sample
from upkeep.reports import build_digest, render_html, render_markdown
from upkeep.settings import Settings
from upkeep.store.db import Store
from upkeep.store.models import Run
from upkeep.store.records import Records

CHROMIUM = "/usr/bin/chromium"


def seed(store: Store, now: datetime) -> None:
    """A week of runs, health targets, a backup catalog and capacity samples with a plan."""
    rows = []
    for day in range(7):
        end = now - timedelta(days=day, hours=1)
        rows.append(
            Run(
                task_name="health",
                task_type="health.check",
                status="completed",
                outcome="warning" if day == 2 else "ok",
                started_at=end - timedelta(seconds=3),
                finished_at=end,
            )
        )
        rows.append(
            Run(
                task_name="nightly-backup",
                task_type="backup.create",
                status="failed" if day == 1 else "completed",
                outcome=None if day == 1 else "ok",
                started_at=end - timedelta(seconds=90),
                finished_at=end,
            )
        )
    with store.write() as s:
        s.add_all(rows)
    health = Records(store, "health")
    health.put("target/api", {"name": "api", "kind": "http", "status": "ok", "detail": "HTTP 200 in 12 ms"})
    health.put("target/db", {"name": "db", "kind": "postgres", "status": "critical", "detail": "connection refused"})
    backups = Records(store, "backup")
    for day in range(3):
        created = now - timedelta(days=day, hours=2)
        backups.put(
            f"app/b{day}",
            {
                "id": f"b{day}",
                "source": "app",
                "type": "postgres",
                "created_at": created.isoformat(),
                "manifest": {"size": (100 + day) * 2**20},
                "status": "verified" if day else "broken",
                "verified_at": (created + timedelta(minutes=10)).isoformat(),
            },
        )
    capacity = Records(store, "capacity")
    for day in range(20):
        store_sample(
            capacity,
            now - timedelta(days=19 - day),
            {"db.size:app": (70 + 1.5 * day) * GIB, "disk.used_percent:/": 40.0 + 0.1 * day},
        )


@pytest.fixture
def seeded(sqlite_store, tmp_path):
    now = datetime.now(UTC)
    seed(sqlite_store, now)
    services = RunServices(sqlite_store, Settings(config=tmp_path / "upkeep.yaml"))
    run_handler(sqlite_store, "capacity.plan", {}, services=services)
    return sqlite_store, services, now


def test_the_weekly_digest_holds_runs_failures_health_backups_and_capacity(seeded):
    store, services, now = seeded
    d = build_digest(services, "week", now)
    assert d["runs"]["total"] == 14
    assert d["runs"]["by_status"] == {"completed": 13, "failed": 1}
    assert [r["task"] for r in d["runs"]["failed"]] == ["nightly-backup"]
    assert sum(day["failed"] for day in d["runs"]["per_day"]) == 1
    assert [t["name"] for t in d["health"]["targets"]] == ["db", "api"]  # worst first
    assert (d["backups"]["created"], d["backups"]["verified"], d["backups"]["broken"]) == (3, 2, 1)
    assert d["backups"]["sources"][0]["status"] == "broken"  # the latest one
    assert [w["metric"] for w in d["capacity"]["warnings"]] == ["db.size:app"]
    assert d["capacity"]["charts"][0]["metric"] == "db.size:app" and len(d["capacity"]["charts"][0]["samples"]) == 20
    assert d["status"] == "critical"
    day = build_digest(services, "day", now)
    assert day["runs"]["total"] == 2


def test_markdown_and_html_render_every_section(seeded):
    _, services, now = seeded
    d = build_digest(services, "week", now)
    md = render_markdown(d)
    for heading in ("## What ran", "## What failed", "## Health", "## Backups", "## Capacity"):
        assert heading in md
    assert "nightly-backup" in md and "db.size:app" in md
    html = render_html(d)
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    svgs = html.count("<svg")
    assert svgs >= 4  # runs per day, backup sizes, two capacity charts
    for start in range(svgs):  # every chart is well-formed XML
        chunk = html.split("<svg", start + 1)[-1].split("</svg>")[0]
        ElementTree.fromstring("<svg" + chunk + "</svg>")


@pytest.mark.parametrize("zone", ["UTC", "Europe/Zagreb"])
def test_every_time_in_the_report_carries_its_zone_and_what_failed_says_how_long_ago(seeded, zone):
    """The period, what failed, the backups' times and their verification: in the configured zone
    (UTC by default), labelled; a failure and a verification also say how long before the report."""
    _, services, now = seeded
    services.settings.timezone = zone
    d = build_digest(services, "week", now)
    assert d["timezone"] == zone
    # each time is labelled with its zone's name on its own date: CET or CEST in Zagreb by the season
    failed_at = datetime.fromisoformat(d["runs"]["failed"][0]["finished_at"]).astimezone(ZoneInfo(zone))
    failed = f"{failed_at:%Y-%m-%d %H:%M %Z} (25 h ago)"  # 1 day and 1 hour before the report
    since = datetime.fromisoformat(d["since"]).astimezone(ZoneInfo(zone))
    md = render_markdown(d)
    assert f"{since:%Y-%m-%d %H:%M %Z} to " in md
    assert f"- {failed} **nightly-backup** failed" in md
    latest = datetime.fromisoformat(d["backups"]["sources"][0]["latest_at"]).astimezone(ZoneInfo(zone))
    assert f"| app | {latest:%Y-%m-%d %H:%M %Z} | 2 h |" in md
    assert "(110 min ago)" in md  # the latest backup's verification, 10 minutes after it was made
    html = render_html(d)
    assert f"<td>{failed}</td>" in html and f"{since:%Y-%m-%d %H:%M %Z} to " in html
    assert {f"{t:%Z}" for t in (failed_at, since, latest)} <= ({"UTC"} if zone == "UTC" else {"CET", "CEST"})
    for text in (md, html):  # no time without its zone
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d(?! (UTC|CET|CEST))", text) is None


def test_a_task_whose_checks_keep_finding_critical_shows_its_streak_and_no_green_badge(sqlite_store, tmp_path):
    """A check that finds a target down completes (outcome critical): it is failing all the same."""
    from upkeep.app import Upkeep
    from upkeep.store.models import ScheduledTask

    settings = Settings(config=tmp_path / "upkeep.yaml")
    task = Upkeep(settings, sqlite_store).create_task({"name": "checks", "type": "debug.noop"}, actor="test")
    now = datetime.now(UTC)
    outcomes = ["ok", "critical", "critical", None, "critical"]  # oldest first; None: the run failed
    with sqlite_store.write() as s:
        for age, outcome in zip(range(len(outcomes), 0, -1), outcomes, strict=True):
            end = now - timedelta(hours=age)
            s.add(
                Run(
                    task_id=task["id"],
                    task_name="checks",
                    task_type="debug.noop",
                    status="failed" if outcome is None else "completed",
                    outcome=outcome,
                    created_at=end - timedelta(seconds=5),
                    started_at=end - timedelta(seconds=5),
                    finished_at=end,
                )
            )
        row = s.get(ScheduledTask, task["id"])
        row.last_status, row.last_outcome, row.consecutive_failures = "completed", "critical", 0
    d = build_digest(RunServices(sqlite_store, settings), "week", now)
    assert [(t["name"], t["not_ok_in_a_row"]) for t in d["health"]["failing_tasks"]] == [("checks", 4)]
    assert "checks (completed critical, 4 runs not ok in a row)" in render_markdown(d)
    html = render_html(d)
    assert '<td>checks</td><td><span class="badge critical">completed</span>' in html
    assert '<span class="badge ok">completed</span>' not in html
    assert "runs not ok in a row" in html and "<td>4</td>" in html


def _cli(store_url: str, tmp_path: Path, *args: str):
    return CliRunner().invoke(app, ["--database-url", store_url, "--config", str(tmp_path / "upkeep.yaml"), *args])


def test_upkeep_report_prints_markdown_by_default(seeded, tmp_path):
    store, _, _ = seeded
    result = _cli(store.url, tmp_path, "report", "--period", "week")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# upkeep weekly report: CRITICAL")


def test_upkeep_report_rejects_an_unknown_period(seeded, tmp_path):
    store, _, _ = seeded
    result = _cli(store.url, tmp_path, "report", "--period", "year")
    assert result.exit_code == 2


def test_html_report_renders_with_charts_in_headless_chromium(seeded, tmp_path, artifacts_dir):
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed")
    store, _, _ = seeded
    out = tmp_path / "weekly.html"
    result = _cli(store.url, tmp_path, "report", "--period", "week", "--format", "html", "-o", str(out))
    assert result.exit_code == 0, result.output
    requests: list[str] = []
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(out.as_uri())
            charts = page.locator("svg.chart")
            assert charts.count() >= 4
            for i in range(charts.count()):
                box = charts.nth(i).bounding_box()
                assert box and box["width"] > 100 and box["height"] > 50
            assert page.locator("svg.chart polyline.samples").count() >= 2
            assert page.locator("svg.chart line.threshold").count() >= 2
            assert page.locator("svg.chart rect.bar-failed").count() == 1
            assert "weekly report" in page.title()
            page.screenshot(path=str(artifacts_dir / "report-week.png"), full_page=True)
        finally:
            browser.close()
    assert requests == [out.as_uri()]  # nothing fetched from anywhere else
    assert errors == []
    assert (artifacts_dir / "report-week.png").stat().st_size > 10_000


class Receiver:
    def __init__(self):
        self.bodies: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                receiver.bodies.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_report_send_posts_the_digest_through_a_channel(seeded, receiver, tmp_path):
    store, services, now = seeded
    Records(store, "_upkeep").put("channels", {"ops": {"url": f"json://127.0.0.1:{receiver.port}/hook", "timeout": 10}})
    result = run_handler(
        store,
        "report.send",
        {"period": "week", "channels": ["ops"]},
        services=services,
        data_dir=tmp_path / ".upkeep",
        clock=FakeClock(now),
    )
    assert result["sent"] == ["ops"] and result["outcome"] == "ok"
    (body,) = receiver.bodies
    assert body["title"] == "[upkeep] weekly report: CRITICAL"
    assert "## What failed" in body["message"] and "nightly-backup" in body["message"]
    assert body["type"] == "failure"
    assert "<svg" in Path(result["html_path"]).read_text()


def test_report_send_dry_run_sends_nothing(seeded, receiver, tmp_path):
    store, services, _ = seeded
    Records(store, "_upkeep").put("channels", {"ops": {"url": f"json://127.0.0.1:{receiver.port}/hook"}})
    result = run_handler(
        store, "report.send", {"channels": ["ops"]}, services=services, dry_run=True, data_dir=tmp_path / ".upkeep"
    )
    assert result["sent"] == [] and "would send" in result["summary"]
    assert receiver.bodies == []
    assert not Path(result["html_path"]).exists()


def test_report_send_fails_when_no_channel_takes_it(seeded, tmp_path):
    store, services, _ = seeded
    Records(store, "_upkeep").put("channels", {"ops": {"url": "json://127.0.0.1:1/hook", "timeout": 3}})
    with pytest.raises(UserError, match="reached no channel"):
        run_handler(store, "report.send", {"channels": ["ops", "nope"], "save_html": False}, services=services)

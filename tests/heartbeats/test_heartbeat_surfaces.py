"""Heartbeat monitors through every surface: the ping endpoint, the admin API, upkeep.yaml (apply,
prune, export), the CLI, the UI pages, /metrics and reports; and a token that outlives apply,
restarts and a backup and restore of the store."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from support.heartbeat_env import START
from upkeep.app.config import apply_file, export_config
from upkeep.cli.main import app as cli
from upkeep.heartbeats import monitors
from upkeep.settings import Settings
from upkeep.store.db import Store

PING_SUFFIXES = ["", "/start", "/fail", "/0", "/1", "/255"]


@pytest.fixture(params=["sqlite"])
def store(request, tmp_path):
    """These tests exercise surfaces, not dialects: SQLite only (the alert tests cover both)."""
    store = Store(f"sqlite:///{tmp_path / 'upkeep.db'}")
    store.upgrade()
    yield store
    store.dispose()


# --- the ping endpoint ---------------------------------------------------------------------------


def test_a_known_and_an_unknown_token_get_the_same_status_and_body(hb):
    token = hb.create("known", schedule="@every 1h")
    unknown = "Zx" + token[2:]
    for suffix in PING_SUFFIXES:
        for method in ("GET", "POST"):
            known_answer = hb.ping(token, suffix, method, b"output")
            unknown_answer = hb.ping(unknown, suffix, method, b"output")
            assert known_answer.status_code == unknown_answer.status_code == 200
            assert known_answer.content == unknown_answer.content == b"OK\n"
            assert known_answer.headers["content-type"] == unknown_answer.headers["content-type"]
    assert hb.client.get("/ping/" + token + "/256").status_code == unknown_status(hb, "/256")
    # the unknown ones were counted for admins, not for viewers
    counted = hb.client.get("/api/v1/heartbeat-pings/unknown", headers=hb.headers()).json()
    assert counted["count"] == 2 * len(PING_SUFFIXES)
    assert counted["recent"][0]["token"] == unknown[:6] + "…" and counted["recent"][0]["source"] == "testclient"
    assert hb.client.get("/api/v1/heartbeat-pings/unknown", headers=hb.headers("viewer")).status_code == 403
    assert monitors.get_heartbeat(hb.store, "known", hb.clock.now())["ping_count"] == 2 * len(PING_SUFFIXES)


def unknown_status(hb, suffix: str) -> int:
    return hb.client.get("/ping/not-a-token" + suffix).status_code


def test_after_a_burst_of_200_pings_a_token_is_limited_and_another_is_not(hb):
    token = hb.create("burst", schedule="@every 1m")
    other = hb.create("other", schedule="@every 1m")
    answers = [hb.ping(token).status_code for _ in range(200)]
    assert answers == [200] * 200
    limited = hb.ping(token, "/fail")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert hb.ping(other).status_code == 200
    assert hb.ping("never-issued-token").status_code == 200
    # a limited ping is not recorded: the monitor saw exactly the 200
    assert monitors.get_heartbeat(hb.store, "burst", hb.clock.now())["ping_count"] == 200


def test_a_ping_body_is_kept_up_to_the_limit_with_its_size(hb):
    token = hb.create("big", schedule="@every 1h")
    body = b"x" * 15_000
    assert hb.ping(token, method="POST", body=body).status_code == 200
    [ping] = hb.client.get("/api/v1/heartbeats/big/pings", headers=hb.headers()).json()["items"]
    assert len(ping["body"]) == 10_000 and ping["body_size"] == 15_000 and ping["method"] == "POST"


# --- the admin API ---------------------------------------------------------------------------------


def test_the_api_lets_admins_manage_monitors_and_shows_the_ping_url_to_admins_only(hb):
    hb.create("api-made", schedule="30 4 * * *", timezone="Europe/Zagreb", grace="45m")
    as_admin = hb.client.get("/api/v1/heartbeats/api-made", headers=hb.headers()).json()
    assert as_admin["ping_url"].startswith("https://upkeep.example.com/ping/")
    assert as_admin["schedule_text"] == "At 04:30 every day (Europe/Zagreb)"
    assert as_admin["expected_at"] == "2027-03-01T03:30:00+00:00"  # 04:30 CET
    as_viewer = hb.client.get("/api/v1/heartbeats/api-made", headers=hb.headers("viewer")).json()
    assert as_viewer["ping_url"] is None and as_viewer["grace"] == "45m"
    listed = hb.client.get("/api/v1/heartbeats", headers=hb.headers("viewer")).json()
    assert [h["name"] for h in listed["items"]] == ["api-made"] and listed["items"][0]["ping_url"] is None

    forbidden = hb.client.post(
        "/api/v1/heartbeats", json={"name": "x", "schedule": "@daily"}, headers=hb.headers("operator")
    )
    assert forbidden.status_code == 403
    bad = hb.client.post(
        "/api/v1/heartbeats", json={"name": "x", "schedule": "@once 2027-01-01T00:00"}, headers=hb.headers()
    )
    assert bad.status_code == 422 and bad.json()["field"] == "schedule" and "recurring" in bad.json()["detail"]
    bad = hb.client.post(
        "/api/v1/heartbeats", json={"name": "x", "schedule": "@daily", "grace": "soon"}, headers=hb.headers()
    )
    assert bad.status_code == 422 and bad.json()["field"] == "grace"
    taken = hb.client.post("/api/v1/heartbeats", json={"name": "api-made", "schedule": "@daily"}, headers=hb.headers())
    assert taken.status_code == 409

    patched = hb.client.patch("/api/v1/heartbeats/api-made", json={"grace": "1h30m"}, headers=hb.headers()).json()
    assert patched["grace"] == "1h30m" and patched["ping_url"] == as_admin["ping_url"]  # the token stays
    assert hb.client.delete("/api/v1/heartbeats/api-made", headers=hb.headers()).status_code == 204
    assert hb.client.get("/api/v1/heartbeats/api-made", headers=hb.headers()).status_code == 404
    audit = hb.client.get("/api/v1/audit?object_type=heartbeat", headers=hb.headers()).json()["items"]
    assert [a["action"] for a in audit] == ["delete", "update", "create"]


# --- upkeep.yaml ---------------------------------------------------------------------------------

FILE = """
heartbeats:
  - name: offsite-rsync
    schedule: "30 4 * * *"
    timezone: Europe/Zagreb
    grace: 30m
    timeout: 2h
    notify: {channels: [hook]}
  - {name: vendor-backup, schedule: "@every 6h", grace: 60m}
"""


def _apply(hb, text: str, **kwargs) -> list[str]:
    path = hb.settings.config_path
    path.write_text(text)
    lines: list[str] = []
    apply_file(
        hb.settings,
        hb.store,
        actor="test",
        prune=kwargs.pop("prune", False),
        dry_run=False,
        echo=lines.append,
        **kwargs,
    )
    return lines


def test_apply_creates_updates_and_prunes_only_file_made_monitors_and_export_writes_them(hb):
    hb.create("from-api", schedule="@daily")
    lines = _apply(hb, FILE)
    assert "+ create heartbeat offsite-rsync (30 4 * * *, Europe/Zagreb, grace 30m)" in lines
    assert "+ create heartbeat vendor-backup (@every 6h, UTC, grace 1h)" in lines
    token = monitors.get_heartbeat(hb.store, "offsite-rsync", hb.clock.now(), settings=hb.settings, with_url=True)[
        "ping_url"
    ]

    assert _apply(hb, FILE)[-1] == "no changes (0 task(s) unchanged)"
    changed = _apply(hb, FILE.replace("grace: 30m", "grace: 45m"))
    assert "~ update heartbeat offsite-rsync" in changed and '    grace: "30m" → "45m"' in changed

    # changed through the API: drift, and the file's value comes back
    hb.client.patch("/api/v1/heartbeats/offsite-rsync", json={"grace": "5m"}, headers=hb.headers())
    drift = _apply(hb, FILE.replace("grace: 30m", "grace: 45m"))
    assert any(line.startswith("! drift: heartbeat offsite-rsync") for line in drift)
    view = monitors.get_heartbeat(hb.store, "offsite-rsync", hb.clock.now(), settings=hb.settings, with_url=True)
    assert view["grace"] == "45m" and view["ping_url"] == token

    exported = export_config(hb.store)
    assert "heartbeats:" in exported and "offsite-rsync" in exported and "from-api" in exported
    assert token.rsplit("/", 1)[1] not in exported
    file_only = export_config(hb.store, file_only=True)
    assert "from-api" not in file_only

    without = 'heartbeats:\n  - {name: vendor-backup, schedule: "@every 6h", grace: 60m}\n'
    kept = _apply(hb, without)
    assert "  heartbeat offsite-rsync was made by the file but is no longer in it (delete it with --prune)" in kept
    pruned = _apply(hb, without, prune=True)
    assert "- delete heartbeat offsite-rsync" in pruned and "- delete heartbeat from-api" not in pruned
    names = [h["name"] for h in monitors.list_heartbeats(hb.store, hb.clock.now())]
    assert names == ["from-api", "vendor-backup"]


def test_an_invalid_monitor_in_the_file_names_its_line_and_field_and_nothing_is_written(hb):
    text = (
        "heartbeats:\n  - {name: ok, schedule: '@daily'}\n  - name: bad\n    schedule: '0 3 * * *'\n    grace: soon\n"
    )
    with pytest.raises(Exception) as caught:
        _apply(hb, text)
    assert str(caught.value).startswith("upkeep.yaml line 3: invalid heartbeat 'bad': grace:")
    assert monitors.list_heartbeats(hb.store, hb.clock.now()) == []


def test_the_token_survives_apply_a_restart_and_a_backup_and_restore_of_the_store(hb, tmp_path):
    from support.contexts import run_handler

    _apply(hb, FILE)
    url = monitors.get_heartbeat(hb.store, "vendor-backup", hb.clock.now(), settings=hb.settings, with_url=True)[
        "ping_url"
    ]
    _apply(hb, FILE.replace("60m", "2h"))  # an update
    restarted = Store(hb.store.url)
    assert (
        monitors.get_heartbeat(restarted, "vendor-backup", hb.clock.now(), settings=hb.settings, with_url=True)[
            "ping_url"
        ]
        == url
    )
    restarted.dispose()

    # upkeep's own backup of its SQLite store, restored into a new file, answers the same URL
    database = hb.store.url.removeprefix("sqlite:///")
    source = {"type": "sqlite", "path": database}
    made = run_handler(
        hb.store, "backup.create", {"source": source, "destination": str(tmp_path / "b")}, data_dir=tmp_path
    )
    assert made["row_counts"]["heartbeats"] == 2
    assert run_handler(hb.store, "backup.verify", {"source": source}, data_dir=tmp_path)["outcome"] == "ok"
    restored_path = tmp_path / "restored.db"
    result = run_handler(
        hb.store,
        "backup.restore",
        {"source": source, "target_path": str(restored_path), "create": True},
        data_dir=tmp_path,
        confirm=True,
    )
    assert result["outcome"] == "ok"
    restored = Store(f"sqlite:///{restored_path}")
    settings = Settings(
        config=tmp_path / "restored.yaml", database_url=restored.url, public_url="https://upkeep.example.com"
    )
    assert (
        monitors.get_heartbeat(restored, "vendor-backup", hb.clock.now(), settings=settings, with_url=True)["ping_url"]
        == url
    )
    from upkeep.heartbeats.pings import Ping, record_ping

    assert record_ping(restored, url.rsplit("/", 1)[1], Ping("success"), hb.clock.now())
    restored.dispose()


# --- the CLI, the UI, /metrics and reports ---------------------------------------------------------


def test_the_cli_lists_shows_with_the_ping_url_pauses_and_resumes(hb, monkeypatch):
    hb.create("cli-made", schedule="0 3 * * *", grace="30m")
    monkeypatch.setenv("UPKEEP_DATABASE_URL", hb.store.url)
    monkeypatch.setenv("UPKEEP_PUBLIC_URL", "https://hb.example.org")
    hb.settings.config_path.write_text("tasks: []\n")
    base = ["--config", str(hb.settings.config_path), "heartbeats"]
    runner = CliRunner()
    listed = runner.invoke(cli, [*base, "list"])
    assert listed.exit_code == 0 and "cli-made" in listed.stdout and "1 monitor(s)" in listed.stdout
    shown = runner.invoke(cli, [*base, "show", "cli-made", "--json"])
    view = json.loads(shown.stdout)
    assert re.fullmatch(r"https://hb\.example\.org/ping/[A-Za-z0-9_-]{32}", view["ping_url"])
    paused = runner.invoke(cli, [*base, "pause", "cli-made"])
    assert paused.exit_code == 0 and "paused" in paused.stdout
    assert json.loads(runner.invoke(cli, [*base, "list", "--json"]).stdout)["heartbeats"][0]["status"] == "paused"
    assert runner.invoke(cli, [*base, "resume", "cli-made"]).exit_code == 0
    missing = runner.invoke(cli, [*base, "show", "nope"])
    assert missing.exit_code == 2 and "no heartbeat monitor 'nope'" in missing.stderr
    bad = runner.invoke(cli, [*base, "list", "--status", "dead"])
    assert bad.exit_code == 2 and "unknown status 'dead'" in bad.stderr


def _login(hb, role: str = "admin") -> None:
    page = hb.client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    hb.client.post("/login", data={"token": hb.tokens[role], "csrf_token": token, "next": "/"})


def test_the_ui_lists_monitors_beside_tasks_and_shows_the_ping_url_to_admins(hb):
    token = hb.create("ui-made", schedule="0 3 * * *", grace="30m")
    hb.at(START + timedelta(hours=3)).ping(token, "/1", "POST", b"disk full")
    _login(hb, "viewer")
    page = hb.client.get("/heartbeats")
    assert page.status_code == 200 and 'href="/heartbeats"' in page.text and "ui-made" in page.text
    assert 'class="badge s-failed"' in page.text
    detail = hb.client.get("/heartbeats/ui-made")
    assert detail.status_code == 200 and "disk full" in detail.text and token not in detail.text
    assert "data-heartbeat-pause" not in detail.text  # a viewer cannot pause
    hb.client.cookies.clear()
    _login(hb, "admin")
    detail = hb.client.get("/heartbeats/ui-made")
    assert f"https://upkeep.example.com/ping/{token}" in detail.text and "data-heartbeat-pause" in detail.text
    assert hb.client.get("/heartbeats/nope").status_code == 404


def test_metrics_and_reports_show_monitors(hb, monkeypatch):
    from upkeep.app.run_services import RunServices
    from upkeep.heartbeats import metrics
    from upkeep.reports import build_digest, render_html, render_markdown

    # a scrape judges the monitors by the wall clock: set to the env's, or from 2027-03-01 "healthy" is down
    monkeypatch.setattr(metrics, "utcnow", hb.clock.now)

    up = hb.create("healthy", schedule="@every 1h")
    hb.create("silent", schedule="@every 1h", grace="5m")
    hb.at(START + timedelta(minutes=90)).ping(up)
    hb.ping("nobody-holds-this")
    hb.clock.set(START + timedelta(hours=2))
    hb.app.state.pings.unknown.flush(hb.clock.now())
    text = hb.client.get("/metrics", headers=hb.headers("viewer")).text
    assert 'upkeep_heartbeat_up{heartbeat="healthy"} 1.0' in text
    assert 'upkeep_heartbeat_pings_total{heartbeat="healthy"} 1.0' in text
    assert "upkeep_heartbeat_unknown_pings_total 1.0" in text
    assert 'upkeep_heartbeat_last_ping_timestamp_seconds{heartbeat="silent"}' not in text

    digest = build_digest(RunServices(hb.store, hb.settings), "day", START + timedelta(hours=2))
    assert digest["heartbeats"]["down"] == ["silent"] and digest["status"] == "warning"
    healthy = [m for m in digest["heartbeats"]["monitors"] if m["name"] == "healthy"][0]
    assert healthy["successes"] == 1 and healthy["status"] == "up"
    assert "| silent | down |" in render_markdown(digest)
    assert "<h2>Heartbeats</h2>" in render_html(digest)


def test_apply_refuses_an_invalid_monitor_before_opening_the_store(tmp_path, monkeypatch):
    config = tmp_path / "upkeep.yaml"
    config.write_text("heartbeats:\n  - name: nightly\n    schedule: '0 3 * * *'\n    timezone: Mars/Base\n")
    monkeypatch.setenv("UPKEEP_DATABASE_URL", f"sqlite:///{tmp_path / 'never.db'}")
    result = CliRunner().invoke(cli, ["--config", str(config), "apply"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: upkeep.yaml line 2: ") and "Mars/Base" in result.stderr
    assert not (tmp_path / "never.db").exists()

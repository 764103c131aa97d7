"""Heartbeat monitors alert through the alerter: pings over real HTTP (the app), a fake clock,
and a real SMTP server and webhook receiving the alerts. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from support.heartbeat_env import SMTP_PASSWORD, START

DAY = timedelta(days=1)
SLOT = START + timedelta(hours=3)  # "0 3 * * *" in UTC


def sent(notes) -> list[tuple[str, str, str]]:
    return sorted((n.channel, n.kind, n.status) for n in notes)


def test_pings_at_the_slot_and_late_within_grace_are_ok_and_a_missing_one_alerts_once(hb):
    token = hb.create("offsite-rsync", schedule="0 3 * * *", grace="30m")
    assert hb.status("offsite-rsync") == "new"

    # day 1: a ping at the slot
    assert hb.at(SLOT + timedelta(seconds=5)).ping(token).status_code == 200
    assert hb.evaluate(SLOT + timedelta(minutes=40)) == []
    assert hb.status("offsite-rsync") == "up"

    # day 2: late, within the grace
    assert hb.evaluate(SLOT + DAY + timedelta(minutes=15)) == []
    assert hb.status("offsite-rsync") == "late"
    assert hb.at(SLOT + DAY + timedelta(minutes=20)).ping(token).status_code == 200
    assert hb.evaluate(SLOT + DAY + timedelta(minutes=45)) == []
    assert hb.status("offsite-rsync") == "up"

    # day 3: no ping; overdue once slot + grace has passed, and alerted once per episode
    assert hb.evaluate(SLOT + 2 * DAY + timedelta(minutes=29)) == []
    notes = hb.evaluate(SLOT + 2 * DAY + timedelta(minutes=31))
    assert sent(notes) == [("email", "overdue", "sent"), ("hook", "overdue", "sent")]
    assert hb.status("offsite-rsync") == "down"
    assert hb.evaluate(SLOT + 2 * DAY + timedelta(hours=2)) == []
    assert hb.evaluate(SLOT + 3 * DAY + timedelta(hours=5)) == []  # still missing: not repeated
    [mail] = hb.smtp.messages
    assert mail.subject == "[upkeep] WARNING heartbeat offsite-rsync: overdue"
    assert f"No ping since {SLOT + DAY + timedelta(minutes=20):%Y-%m-%d %H:%M:%S} UTC (24 h ago)." in mail.body
    assert "https://upkeep.example.com/heartbeats/offsite-rsync" in mail.body
    [hook] = hb.hooks()
    assert hook["title"] == mail.subject and hook["type"] == "warning"

    # it pings again: one recovery, then quiet
    assert hb.at(SLOT + 4 * DAY).ping(token).status_code == 200
    notes = hb.evaluate(SLOT + 4 * DAY + timedelta(minutes=1))
    assert sent(notes) == [("email", "recovery", "sent"), ("hook", "recovery", "sent")]
    assert hb.smtp.messages[-1].subject == "[upkeep] RESOLVED heartbeat offsite-rsync: ok again"
    assert hb.evaluate(SLOT + 4 * DAY + timedelta(hours=1)) == []
    assert len(hb.smtp.messages) == 2


def test_a_start_without_an_end_within_the_timeout_fails(hb):
    token = hb.create("vendor-backup", schedule="@every 1h", grace="5m", timeout="10m")
    t0 = START + timedelta(minutes=30)
    assert hb.at(t0).ping(token, "/start").status_code == 200
    assert hb.evaluate(t0 + timedelta(minutes=9)) == []
    assert hb.status("vendor-backup") == "running"

    notes = hb.evaluate(t0 + timedelta(minutes=11))
    assert sent(notes) == [("email", "failure", "sent"), ("hook", "failure", "sent")]
    assert hb.status("vendor-backup") == "down"
    [mail] = hb.smtp.messages
    assert mail.subject == "[upkeep] CRITICAL heartbeat vendor-backup: did not finish"
    assert "did not report its end within 10m" in mail.body
    pings = hb.client.get("/api/v1/heartbeats/vendor-backup/pings", headers=hb.headers("viewer")).json()["items"]
    assert [p["kind"] for p in pings] == ["timeout", "start"]
    assert hb.evaluate(t0 + timedelta(minutes=30)) == []  # the failure was announced once

    # the job ends after all: a recovery
    assert hb.at(t0 + timedelta(minutes=31)).ping(token).status_code == 200
    notes = hb.evaluate(t0 + timedelta(minutes=32))
    assert sent(notes) == [("email", "recovery", "sent"), ("hook", "recovery", "sent")]
    assert hb.smtp.messages[-1].subject == "[upkeep] RESOLVED heartbeat vendor-backup: ok again"


def test_an_end_before_the_timeout_closes_the_start(hb):
    token = hb.create("quick", schedule="@every 1h", timeout="10m")
    hb.at(START).ping(token, "/start")
    hb.at(START + timedelta(minutes=3)).ping(token, "/0")
    assert hb.evaluate(START + timedelta(minutes=20)) == []
    assert hb.status("quick") == "up"


def test_a_failure_ping_alerts_with_its_exit_status_output_and_source(hb):
    token = hb.create("rsync", schedule="0 3 * * *")
    output = (
        b"sending incremental file list\nrsync error: some files could not be transferred (code 23)\n"
        + f"auth failed with {SMTP_PASSWORD}\n".encode()  # a secret the instance holds: scrubbed from alerts
    )
    assert hb.at(SLOT).ping(token, "/23", method="POST", body=output).status_code == 200
    notes = hb.evaluate(SLOT + timedelta(seconds=5))
    assert sent(notes) == [("email", "failure", "sent"), ("hook", "failure", "sent")]
    [mail] = hb.smtp.messages
    assert mail.subject == "[upkeep] CRITICAL heartbeat rsync: failed (exit status 23)"
    assert "rsync error: some files could not be transferred (code 23)" in mail.body
    assert "from testclient" in mail.body
    assert SMTP_PASSWORD not in mail.body and "auth failed with ***" in mail.body
    view = hb.client.get("/api/v1/heartbeats/rsync", headers=hb.headers("viewer")).json()
    assert view["status"] == "down" and view["last_exit_status"] == 23
    assert view["pings"][0]["source"] == "testclient"


def test_a_paused_monitor_records_pings_and_never_alerts(hb):
    token = hb.create("paused", schedule="0 3 * * *", grace="10m")
    response = hb.client.post("/api/v1/heartbeats/paused/pause", headers=hb.headers("operator"))
    assert response.status_code == 200 and response.json()["status"] == "paused"
    hb.at(SLOT).ping(token, "/fail")
    assert hb.evaluate(SLOT + 3 * DAY) == []  # neither the failure nor the missing pings alert
    assert hb.client.get("/api/v1/heartbeats/paused", headers=hb.headers()).json()["ping_count"] == 1
    resumed = hb.client.post("/api/v1/heartbeats/paused/resume", headers=hb.headers("operator")).json()
    assert resumed["expected_at"] == (SLOT + 4 * DAY).isoformat()  # expected by the schedule from now on


def test_old_pings_are_pruned_to_the_newest_hundred(hb):
    token = hb.create("chatty", schedule="@every 1m", grace="1m")
    for i in range(120):
        hb.at(START + timedelta(seconds=i)).ping(token)
    hb.alerter.evaluate_once(START + timedelta(minutes=3), check_overdue=True)
    page = hb.client.get("/api/v1/heartbeats/chatty/pings?limit=500", headers=hb.headers()).json()
    assert page["total"] == 100
    assert page["items"][-1]["received_at"] == (START + timedelta(seconds=20)).isoformat()


def test_a_silence_of_the_heartbeat_suppresses_its_alerts(hb):
    from upkeep.app.alerts import create_silence

    token = hb.create("quiet", schedule="0 3 * * *")
    create_silence(
        hb.store, match={"heartbeat": "quiet"}, until=SLOT + DAY, reason="maintenance", actor="test", now=START
    )
    hb.at(SLOT).ping(token, "/fail")
    notes = hb.evaluate(SLOT + timedelta(minutes=1))
    assert sent(notes) == [("email", "failure", "suppressed"), ("hook", "failure", "suppressed")]
    assert hb.smtp.messages == []


def test_with_no_monitor_the_evaluation_reads_no_ping_and_a_monitor_made_later_alerts(hb):
    from sqlalchemy import event

    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(hb.store.engine, "before_cursor_execute", seen)
    try:
        assert hb.evaluate(START + timedelta(minutes=1)) == []
        assert not [s for s in statements if "heartbeat_pings" in s]  # one look at heartbeats, no more
        token = hb.create("late-job", schedule="@every 1h", grace="5m")
        statements.clear()
        assert hb.at(START + timedelta(minutes=2)).ping(token, "/fail").status_code == 200
        notes = hb.evaluate(START + timedelta(minutes=3))
        assert sent(notes) == [("email", "failure", "sent"), ("hook", "failure", "sent")]
        assert [s for s in statements if "heartbeat_pings" in s]
    finally:
        event.remove(hb.store.engine, "before_cursor_execute", seen)

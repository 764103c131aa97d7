"""Alerts end to end: real runs (claimed and executed in-process), a real SMTP server (aiosmtpd with
AUTH), a real HTTP receiver for the JSON webhook and the ping URL, and a controllable ``now``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from notify_receivers import HttpReceiver, receiver_fixtures

from upkeep.app import Upkeep
from upkeep.app.alerts import create_silence
from upkeep.engine import lifecycle
from upkeep.engine.execute import execute_claimed
from upkeep.metrics import METRICS_DOMAIN
from upkeep.notify.alerter import Alerter
from upkeep.notify.outbox import history, pending
from upkeep.notify.pings import Ping, send_pings
from upkeep.settings import Settings
from upkeep.store.db import Store
from upkeep.store.models import AlertState, Run
from upkeep.store.records import CONFIG_DOMAIN, Records

SMTP_PASSWORD = "s3cret-Smtp/pa@ss"  # has URL-special characters on purpose
TASK_SECRET = "task-secret-value-42"


smtp, http = receiver_fixtures(SMTP_PASSWORD)


@pytest.fixture
def env(tmp_path, smtp, http, monkeypatch):
    monkeypatch.setenv("UPKEEP_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("UPKEEP_TEST_TASK_SECRET", TASK_SECRET)
    settings = Settings(config=tmp_path / "upkeep.yaml", public_url="https://upkeep.example.com/", heartbeat_seconds=5)
    store = Store(settings.resolved_database_url)
    store.upgrade()
    Records(store, CONFIG_DOMAIN).put(
        "channels",
        {
            "email": {
                "url": f"mailto://alerts:${{env:UPKEEP_TEST_SMTP_PASSWORD}}@127.0.0.1:{smtp.port}"
                "?from=upkeep@example.com&to=ops@example.com",
                "timeout": 10,
            },
            "hook": {"url": f"json://127.0.0.1:{http.port}/hook", "timeout": 10},
        },
    )
    smtp.inbox.messages.clear()
    http.requests.clear()
    http.status = 200
    service = Upkeep(settings, store, trusted=True)  # tasks as upkeep.yaml would make them
    alerter = Alerter(store, settings)
    alerter.evaluate_once(datetime.now(UTC), check_overdue=False)  # the cursor starts here
    yield Env(settings, store, service, alerter, smtp, http)
    store.dispose()


class Env:
    def __init__(self, settings, store, service, alerter, smtp, http):
        self.settings, self.store, self.service, self.alerter = settings, store, service, alerter
        self.smtp, self.http = smtp, http

    def create(self, name: str, *, retries: int = 0, fail: int = 99, channels=("email", "hook"), **notify):
        return self.service.create_task(
            {
                "name": name,
                "type": "debug.fail",
                "config": {"fail_attempts": fail, "message": "disk full on ${env:UPKEEP_TEST_TASK_SECRET}"},
                "max_retries": retries,
                "retry_backoff_seconds": 0,
                "notify": {"channels": list(channels), **notify},
                "ping_url": f"http://127.0.0.1:{self.http.port}/ping/{name}",
            },
            actor="test",
        )

    def attempt(self, run_id: int) -> str:
        claimed = lifecycle.claim(self.store, run_id, lifecycle.WorkerIdentity.current())
        assert claimed is not None
        return execute_claimed(self.store, claimed, self.settings)

    def retry_of(self, run_id: int) -> int | None:
        with self.store.read() as s:
            return s.execute(sa.select(Run.id).where(Run.retry_of == run_id)).scalar()

    def run_episode(self, task: str, **overrides) -> list[int]:
        """Trigger the task and execute every attempt (retries included); the attempts' run ids."""
        run_id = self.service.trigger(task, actor="test", overrides=overrides)["id"]
        ids = []
        while run_id is not None:
            self.attempt(run_id)
            ids.append(run_id)
            run_id = self.retry_of(run_id)
        return ids

    def evaluate(self, now: datetime, **kwargs):
        return self.alerter.evaluate_once(now, **{"check_overdue": False, **kwargs})

    def hooks(self) -> list[dict]:
        return [r.json() for r in self.http.requests if r.path == "/hook"]


def test_a_failing_task_with_two_retries_alerts_once_after_the_last_attempt_and_once_on_recovery(env):
    env.create("backup-nightly", retries=2)
    t0 = datetime.now(UTC)
    run_id = env.service.trigger("backup-nightly", actor="test")["id"]

    env.attempt(run_id)  # attempt 1 fails, a retry is scheduled
    assert env.evaluate(t0) == []
    second = env.retry_of(run_id)
    env.attempt(second)  # attempt 2 fails, a retry is scheduled
    assert env.evaluate(t0) == []
    third = env.retry_of(second)
    env.attempt(third)  # attempt 3 fails: the final one
    assert env.retry_of(third) is None

    sent = env.evaluate(t0)
    assert sorted((n.channel, n.status) for n in sent) == [("email", "sent"), ("hook", "sent")]
    [mail] = env.smtp.messages
    assert mail.subject == "[upkeep] CRITICAL backup-nightly: failed"
    assert mail.recipients == ["ops@example.com"]
    assert "Attempt: 3 of 3" in mail.body
    assert "disk full on ***" in mail.body, mail.body
    assert f"https://upkeep.example.com/runs/{third}" in mail.body
    assert TASK_SECRET not in mail.body and SMTP_PASSWORD not in mail.body
    [hook] = env.hooks()
    assert hook["title"] == "[upkeep] CRITICAL backup-nightly: failed"
    assert hook["type"] == "failure"
    assert f"/runs/{third}" in hook["message"]
    assert TASK_SECRET not in str(hook)

    # the same evaluation again sends nothing: each run is processed once
    assert env.evaluate(t0) == []

    # it keeps failing: within repeat_interval (4h) nothing more is sent
    env.run_episode("backup-nightly")
    assert env.evaluate(t0 + timedelta(hours=1)) == []
    assert len(env.smtp.messages) == 1
    # after repeat_interval one reminder
    env.run_episode("backup-nightly")
    sent = env.evaluate(t0 + timedelta(hours=4, minutes=1))
    assert [n.kind for n in sent] == ["failure", "failure"]
    assert env.smtp.messages[-1].subject == "[upkeep] CRITICAL backup-nightly: failed (still)"
    assert "Failures in a row: 3" in env.smtp.messages[-1].body

    # it succeeds again: one recovery per channel, then nothing
    env.service.update_task("backup-nightly", {"config": {"fail_attempts": 0}}, actor="test")
    [ok_run] = env.run_episode("backup-nightly")
    sent = env.evaluate(t0 + timedelta(hours=5))
    assert sorted((n.channel, n.kind) for n in sent) == [("email", "recovery"), ("hook", "recovery")]
    assert env.smtp.messages[-1].subject.startswith("[upkeep] RESOLVED backup-nightly: recovered")
    assert f"/runs/{ok_run}" in env.smtp.messages[-1].body
    env.run_episode("backup-nightly")
    assert env.evaluate(t0 + timedelta(hours=6)) == []
    assert len(env.smtp.messages) == 3
    assert all(login == ("alerts", True) for login in env.smtp.logins)


def test_the_ping_url_receives_start_success_and_fail(env):
    env.create("pinged", retries=1)
    failed = env.run_episode("pinged")  # two attempts, both fail
    assert len(failed) == 2
    env.evaluate(datetime.now(UTC))
    assert env.http.paths("/ping/") == ["/ping/pinged/start", "/ping/pinged/start", "/ping/pinged/fail"]
    fail_ping = [r for r in env.http.requests if r.path == "/ping/pinged/fail"][0]
    assert fail_ping.method == "POST" and b"disk full on ***" in fail_ping.body
    assert TASK_SECRET.encode() not in fail_ping.body

    env.http.requests.clear()
    env.service.update_task("pinged", {"config": {"fail_attempts": 0}}, actor="test")
    run_id = env.service.trigger("pinged", actor="test")["id"]
    claimed = lifecycle.claim(env.store, run_id, lifecycle.WorkerIdentity.current())
    env.evaluate(datetime.now(UTC))  # the run is running: its start is pinged now, while it runs
    assert env.http.paths("/ping/") == ["/ping/pinged/start"]
    execute_claimed(env.store, claimed, env.settings)
    env.evaluate(datetime.now(UTC))
    assert env.http.paths("/ping/") == ["/ping/pinged/start", "/ping/pinged"]  # start not repeated


def test_pings_to_one_url_keep_their_order_even_when_the_network_is_slow():
    """One ping URL is one check for the outside monitor: a retry's /start must not overtake the
    failed attempt's pings, nor the end ping the start, whatever the latency of each request."""
    receiver = HttpReceiver(slow_first=0.5).start()
    try:
        url = f"http://127.0.0.1:{receiver.port}/ping/job"
        other = f"http://127.0.0.1:{receiver.port}/ping/other"
        sent = send_pings(
            [
                Ping(url, "start", run_id=1),
                Ping(other, "start", run_id=3),
                Ping(url, "start", run_id=2),
                Ping(url, "fail", run_id=2, body="boom"),
            ]
        )
    finally:
        receiver.stop()
    assert sent == [True, True, True, True]
    assert receiver.paths("/ping/job") == ["/ping/job/start", "/ping/job/start", "/ping/job/fail"]
    assert receiver.paths("/ping/other") == ["/ping/other/start"]


def test_each_finished_run_is_evaluated_once_across_evaluations_a_late_commit_included(env):
    """The cursor is saved and read back at every evaluation: the runs it has seen stay seen."""
    for name in ("a", "b"):
        env.create(name, fail=0)
    for name in ("a", "b", "a", "b", "b"):  # ids of each task not consecutive
        env.run_episode(name)
    ends = lambda: [p for p in env.http.paths("/ping/") if not p.endswith("/start")]  # noqa: E731
    env.evaluate(datetime.now(UTC))
    assert sorted(ends()) == ["/ping/a", "/ping/a", "/ping/b", "/ping/b", "/ping/b"]
    env.http.requests.clear()
    env.evaluate(datetime.now(UTC))
    assert ends() == []

    # a run whose end commits after the cursor passed its finish time (another host, a slow commit)
    (late,) = env.run_episode("a")
    with env.store.write() as s:
        run = s.get(Run, late)
        run.finished_at -= timedelta(seconds=30)
    env.evaluate(datetime.now(UTC))
    assert ends() == ["/ping/a"]
    env.evaluate(datetime.now(UTC))
    assert ends() == ["/ping/a"]


def test_an_evaluation_overtaken_by_another_after_its_read_writes_nothing_and_each_run_alerts_once(env, monkeypatch):
    """On SQLite the runs are read before the write lock is taken; another alerter (or a retried
    evaluation) that commits in between must not make them alert, ping or count twice."""
    env.create("flaky")
    env.run_episode("flaky")
    other = Alerter(env.store, env.settings)
    read = Alerter._read

    def overtaken_after_reading(alerter, *args):
        found = read(alerter, *args)
        if alerter is env.alerter:
            assert sorted(n.channel for n in other.evaluate_once(datetime.now(UTC), check_overdue=False)) == [
                "email",
                "hook",
            ]
        return found

    monkeypatch.setattr(Alerter, "_read", overtaken_after_reading)
    assert env.evaluate(datetime.now(UTC)) == []
    monkeypatch.undo()
    assert env.evaluate(datetime.now(UTC)) == []  # from the other's cursor: nothing new
    assert len(env.smtp.messages) == 1 and len(env.hooks()) == 1
    assert env.http.paths("/ping/flaky") == ["/ping/flaky/start", "/ping/flaky/fail"]
    with env.store.read() as s:
        counted = Records(env.store, METRICS_DOMAIN).get("runs:flaky")
        states = s.execute(sa.select(AlertState.channel, AlertState.consecutive_failures)).all()
    assert counted == {"failed|": 1}
    assert sorted(states) == [("email", 1), ("hook", 1)]


def test_a_silence_suppresses_alerts_and_records_it(env):
    env.create("noisy")
    now = datetime.now(UTC)
    create_silence(
        env.store, match={"task": "noisy"}, until=now + timedelta(hours=1), reason="migration", actor="test", now=now
    )
    env.run_episode("noisy")
    notes = env.evaluate(now)
    assert sorted((n.channel, n.status) for n in notes) == [("email", "suppressed"), ("hook", "suppressed")]
    assert env.smtp.messages == [] and env.hooks() == []
    assert {h["status"] for h in history(env.store)} == {"suppressed"}
    # still failing after the silence ended: the next failure alerts (nothing was announced before)
    env.run_episode("noisy")
    notes = env.evaluate(now + timedelta(hours=2))
    assert sorted((n.channel, n.status) for n in notes) == [("email", "sent"), ("hook", "sent")]


def test_a_channel_silence_only_silences_that_channel(env):
    env.create("half")
    now = datetime.now(UTC)
    create_silence(env.store, match={"channel": "email"}, until=now + timedelta(hours=1), actor="test", now=now)
    env.run_episode("half")
    notes = env.evaluate(now)
    assert sorted((n.channel, n.status) for n in notes) == [("email", "suppressed"), ("hook", "sent")]


def test_outcomes_and_consecutive_failures_follow_the_notify_rules(env):
    env.service.create_task(
        {
            "name": "disk-check",
            "type": "debug.sleep",
            "config": {"seconds": 0, "outcome": "warning"},
            "notify": {"channels": ["hook"], "on_outcome": ["warning", "critical"]},
        },
        actor="test",
    )
    env.create("flaky", channels=("hook",), after_consecutive_failures=2)
    now = datetime.now(UTC)
    env.run_episode("disk-check")
    env.run_episode("flaky")
    assert [n.title for n in env.evaluate(now)] == ["[upkeep] WARNING disk-check: completed, outcome warning"]
    env.run_episode("disk-check", outcome="critical")  # warning -> critical alerts at once
    env.run_episode("flaky")  # the second failure in a row reaches the threshold
    titles = sorted(n.title for n in env.evaluate(now))
    assert titles == ["[upkeep] CRITICAL disk-check: completed, outcome critical", "[upkeep] CRITICAL flaky: failed"]


def test_a_failing_channel_is_retried_at_the_next_evaluation_without_losing_the_alert(env):
    env.create("retry-me", channels=("hook",))
    env.http.status = 500
    env.run_episode("retry-me")
    now = datetime.now(UTC)
    [note] = env.evaluate(now)
    assert note.status == "failed" and "did not accept" in note.error
    assert len(pending(env.store)) == 1
    env.http.status = 200
    [note] = env.evaluate(now + timedelta(seconds=5))
    assert note.status == "sent" and note.title == "[upkeep] CRITICAL retry-me: failed"
    assert pending(env.store) == []
    assert len([h for h in env.hooks() if h["title"] == note.title]) == 2  # the refused one and this one


def test_an_unreachable_smtp_server_does_not_stop_other_channels(env, smtp):
    records = Records(env.store, CONFIG_DOMAIN)
    channels = records.get("channels")
    channels["email"]["url"] = channels["email"]["url"].replace(str(smtp.port), "1")  # nothing listens there
    records.put("channels", channels)
    env.create("both")
    env.run_episode("both")
    notes = env.evaluate(datetime.now(UTC))
    assert sorted((n.channel, n.status) for n in notes) == [("email", "failed"), ("hook", "sent")]
    failed = [n for n in notes if n.channel == "email"][0]
    assert SMTP_PASSWORD not in failed.error


def test_an_overdue_task_alerts_once_per_episode(env):
    env.service.create_task(
        {"name": "hourly-report", "type": "debug.noop", "schedule": "@every 1h", "notify": {"channels": ["hook"]}},
        actor="test",
    )
    now = datetime.now(UTC)
    assert env.evaluate(now, check_overdue=True) == []  # its first slot is in the future
    late = now + timedelta(hours=3)  # the scheduler never ran: the slot was not started
    notes = env.evaluate(late, check_overdue=True)
    assert [(n.kind, n.title) for n in notes] == [("overdue", "[upkeep] WARNING hourly-report: overdue")]
    assert env.evaluate(late + timedelta(minutes=1), check_overdue=True) == []
    assert env.evaluate(late + timedelta(hours=5), check_overdue=True) == []  # once, not every interval
    with env.store.read() as s:
        assert s.execute(sa.select(AlertState.state)).scalars().all() == ["overdue"]


@pytest.mark.postgres
def test_two_alerters_racing_on_postgresql_send_each_alert_once(pg_database, http, tmp_path):
    import threading

    settings = Settings(config=tmp_path / "upkeep.yaml", database_url=pg_database, heartbeat_seconds=5)
    stores = [Store(pg_database), Store(pg_database)]
    stores[0].upgrade()
    Records(stores[0], CONFIG_DOMAIN).put("channels", {"hook": {"url": f"json://127.0.0.1:{http.port}/hook"}})
    http.requests.clear()
    http.status = 200
    alerters = [Alerter(store, settings) for store in stores]
    alerters[0].evaluate_once(datetime.now(UTC), check_overdue=False)
    env = Env(settings, stores[0], Upkeep(settings, stores[0], trusted=True), alerters[0], None, http)
    env.create("pg-task", retries=1, channels=("hook",))
    env.run_episode("pg-task")
    env.run_episode("pg-task")  # a second failing episode: state persists, nothing more to send

    results: list = []
    barrier = threading.Barrier(2)

    def evaluate(alerter):
        barrier.wait()
        for _ in range(3):
            results.extend(alerter.evaluate_once(datetime.now(UTC), check_overdue=False))

    threads = [threading.Thread(target=evaluate, args=(a,)) for a in alerters]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [(n.channel, n.status) for n in results] == [("hook", "sent")]
    assert [h["title"] for h in env.hooks()] == ["[upkeep] CRITICAL pg-task: failed"]
    with stores[0].read() as s:
        assert s.execute(sa.select(AlertState.state, AlertState.consecutive_failures)).all() == [("failing", 2)]
    for store in stores:
        store.dispose()


def test_the_background_alerter_delivers_without_being_called(env):
    import time

    env.create("background", channels=("hook",))
    alerter = Alerter(env.store, env.settings, interval=0.2)
    alerter.start()
    try:
        env.run_episode("background")
        deadline = time.monotonic() + 15
        while not env.hooks() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        alerter.stop()
    assert [h["title"] for h in env.hooks()] == ["[upkeep] CRITICAL background: failed"]
    assert not alerter._thread.is_alive()


def test_tasks_without_channels_use_default_channels_and_unknown_channels_are_skipped(env):
    records = Records(env.store, CONFIG_DOMAIN)
    channels = records.get("channels")
    channels["hook"]["default"] = True
    records.put("channels", channels)
    env.create("no-channels", channels=())
    env.create("typo", channels=("hoook",))
    env.run_episode("no-channels")
    env.run_episode("typo")
    notes = env.evaluate(datetime.now(UTC))
    assert [(n.task, n.channel, n.status) for n in notes] == [("no-channels", "hook", "sent")]
    assert pending(env.store) == []


def test_upkeep_serve_alone_delivers_a_failure_alert(tmp_path, http):
    """The embedded default is one process: `upkeep serve` must run the alerter too."""
    import os
    import subprocess
    import sys
    import time

    from support.servers import free_port, wait_for_port

    config = tmp_path / "upkeep.yaml"
    config.write_text(
        f"channels:\n  hook: {{url: 'json://127.0.0.1:{http.port}/serve-hook', timeout: 10}}\n"
        "tasks:\n  - {name: broken, type: debug.fail, config: {fail_attempts: 9}, notify: {channels: [hook]}}\n"
    )
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "UPKEEP_CONFIG": str(config)}
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "upkeep.cli.main", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, 60)
        settings = Settings(config=config)
        store = Store(settings.resolved_database_url)
        Upkeep(settings, store).trigger("broken", actor="test")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(r.path == "/serve-hook" for r in http.requests):
            time.sleep(0.1)
        hooks = [r.json() for r in http.requests if r.path == "/serve-hook"]
        assert [h["title"] for h in hooks] == ["[upkeep] CRITICAL broken: failed"], (tmp_path / "serve.log").read_text()
        store.dispose()
    finally:
        proc.terminate()
        proc.wait(20)


def test_upkeep_scheduler_alerts_and_holds_no_alerter_process_while_few_runs_finish(env, tmp_path):
    """``upkeep scheduler`` evaluates alerts in its own process while few runs finish (a child
    process takes over while many do: tests/notify/test_alerter_offload.py), and stops cleanly."""
    import os
    import subprocess
    import sys
    import time

    import psutil

    env.create("nightly", channels=("hook",))
    proc_env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "UPKEEP_CONFIG": str(env.settings.config)}
    with open(tmp_path / "scheduler.log", "ab") as log:
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "upkeep.cli.main", "scheduler"], env=proc_env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        env.run_episode("nightly")
        deadline = time.monotonic() + 30
        while not env.http.paths("/hook"):
            log_text = (tmp_path / "scheduler.log").read_text()
            assert time.monotonic() < deadline, f"timed out waiting for the alert\n{log_text}"
            time.sleep(0.2)
        assert "nightly" in env.http.requests[-1].body.decode()
        last = Records(env.store, "_alerts").get("last_evaluation")
        assert last["pid"] == scheduler.pid
        assert [p for p in psutil.Process(scheduler.pid).children() if p.status() != psutil.STATUS_ZOMBIE] == []
    finally:
        scheduler.terminate()
        scheduler.wait(30)
    assert scheduler.returncode == 0


@pytest.mark.parametrize(
    ("spoiled", "reason"),
    [({"jitter_seconds": 1e300}, "could not plan"), ({"timeout_seconds": 1e300}, "could not start")],
    ids=["planning", "start"],
)
def test_a_task_that_fails_to_plan_or_start_alerts_saying_why(env, spoiled, reason):
    """A value no edge accepts today (an old row) fails that task's runs; the failure alerts."""
    from upkeep.engine.scheduler import tick
    from upkeep.store.models import ScheduledTask

    created = env.create("spoiled", channels=("hook",))
    due = {"schedule": "@every 1m", "next_run_at": datetime.now(UTC), **spoiled}
    with env.store.write() as s:
        s.execute(sa.update(ScheduledTask).where(ScheduledTask.id == created["id"]).values(**due))
    now = datetime.now(UTC) + timedelta(seconds=1)
    tick(env.store, now)
    lifecycle.start_due_runs(env.store, [lifecycle.WorkerIdentity.current()], queues=None, dispatcher="t", now=now)
    sent = env.evaluate(now + timedelta(seconds=1))
    assert [(n.channel, n.kind) for n in sent] == [("hook", "failure")]
    [hook] = env.hooks()
    assert "spoiled" in hook["title"] and reason in hook["message"], hook

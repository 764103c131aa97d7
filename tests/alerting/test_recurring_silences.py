"""A recurring silence from upkeep.yaml, ``Sun 02:00-05:00 Europe/Zagreb``, holds alerts inside its
window and not outside it, on a fake clock across both DST changes of 2027 (28 March: 02:00 CET
jumps to 03:00 CEST; 31 October: 03:00 CEST falls back to 02:00 CET), for a task and for a
heartbeat monitor. The instants where the change matters are checked against a Sunday without one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from upkeep.app import Upkeep
from upkeep.clock import FakeClock
from upkeep.heartbeats.monitors import get_heartbeat

WINDOW = "Sun 02:00-05:00 Europe/Zagreb"
CHECKPOINTS = [  # (instant, whether the silence holds it): the wall clock in Zagreb in the comments
    (datetime(2027, 3, 21, 3, 30, tzinfo=UTC), True),  # 04:30 CET, a winter Sunday
    (datetime(2027, 3, 28, 0, 30, tzinfo=UTC), False),  # 01:30 CET, before the window
    (datetime(2027, 3, 28, 1, 30, tzinfo=UTC), True),  # 03:30 CEST: the clocks jumped into the window
    (datetime(2027, 3, 28, 3, 30, tzinfo=UTC), False),  # 05:30 CEST: over (a week earlier, inside)
    (datetime(2027, 10, 24, 3, 30, tzinfo=UTC), False),  # 05:30 CEST, a summer Sunday
    (datetime(2027, 10, 30, 23, 30, tzinfo=UTC), False),  # Sunday 01:30 CEST, before the window
    (datetime(2027, 10, 31, 0, 30, tzinfo=UTC), True),  # 02:30 CEST, the first pass through 02:xx
    (datetime(2027, 10, 31, 3, 30, tzinfo=UTC), True),  # 04:30 CET: inside (a week earlier, over)
    (datetime(2027, 10, 31, 4, 30, tzinfo=UTC), False),  # 05:30 CET, after the window
]
EXPECTED = [("suppressed" if held else "sent") for _, held in CHECKPOINTS]

CONFIG = f"""\
tasks:
  - name: weekly-vacuum
    type: debug.sleep
    config: {{seconds: 0}}
    notify: {{channels: [hook]}}
  - name: other-task
    type: debug.sleep
    config: {{seconds: 0}}
    notify: {{channels: [hook]}}
heartbeats:
  - name: offsite-sync
    schedule: "@every 1h"
    grace: 1h
    notify: {{channels: [hook]}}
silences:
  - match: {{task: weekly-vacuum}}
    windows: ["{WINDOW}"]
    reason: the vacuum's window
  - match: {{heartbeat: offsite-sync}}
    windows: ["{WINDOW}"]
    reason: the sync runs in the same window
"""


@pytest.fixture
def silenced(world):
    diff = world.apply(CONFIG)
    assert [line for line in diff.lines() if "create silence" in line] == [
        f"+ create silence task=weekly-vacuum during {WINDOW}",
        f"+ create silence heartbeat=offsite-sync during {WINDOW}",
    ]
    world.evaluate(CHECKPOINTS[0][0] - timedelta(days=1))
    return world


def test_a_recurring_silence_holds_a_tasks_alerts_only_inside_its_window_across_dst(silenced):
    world = silenced
    seen, other = [], []
    for at, _held in CHECKPOINTS:
        world.run("weekly-vacuum", outcome="critical")
        world.run("other-task", outcome="critical")
        notes = world.evaluate(at)
        seen += [n.status for n in notes if n.task == "weekly-vacuum"]
        other += [n.status for n in notes if n.task == "other-task"]
        world.run("weekly-vacuum")
        world.run("other-task")
        recovered = world.evaluate(at + timedelta(minutes=1))
        # a recovery is sent only for what was announced
        assert [n.task for n in recovered if n.kind == "recovery"] == (
            ["weekly-vacuum", "other-task"] if seen[-1] == "sent" else ["other-task"]
        )
    assert seen == EXPECTED
    assert other == ["sent"] * len(CHECKPOINTS)  # the silence matches its task only
    titles = [h["title"] for h in world.posts("/hook") if "weekly-vacuum" in h["title"]]
    assert titles.count("[upkeep] CRITICAL weekly-vacuum: completed, outcome critical") == EXPECTED.count("sent")


def test_a_recurring_silence_holds_a_heartbeat_monitors_alerts_only_inside_its_window_across_dst(silenced):
    world = silenced
    clock = FakeClock(CHECKPOINTS[0][0])
    client = world.app(clock)
    token = get_heartbeat(world.store, "offsite-sync", clock.now(), settings=world.settings, with_url=True)[
        "ping_url"
    ].rsplit("/", 1)[1]
    seen = []
    for at, _held in CHECKPOINTS:
        clock.set(at)
        assert client.get(f"/ping/{token}/fail").status_code == 200
        seen += [n.status for n in world.evaluate(at + timedelta(seconds=30)) if n.kind == "failure"]
        clock.set(at + timedelta(minutes=1))
        assert client.get(f"/ping/{token}").status_code == 200
        world.evaluate(at + timedelta(minutes=1, seconds=30))
    assert seen == EXPECTED
    client.close()


def test_the_silences_are_audited_exported_and_only_file_made_ones_are_pruned(silenced):
    from upkeep.app.alerts import create_silence, list_silences
    from upkeep.app.config import export_config

    world = silenced
    audit, _ = Upkeep(world.settings, world.store).list_audit(object_type="silence")
    assert [(a["action"], a["actor"]) for a in audit] == [("silence", "test"), ("silence", "test")]
    exported = export_config(world.store)
    assert f"- match:\n    task: weekly-vacuum\n  windows:\n  - {WINDOW}\n  reason: the vacuum's window" in exported
    made = create_silence(
        world.store, match={"task": "other-task"}, windows=["Sat 01:00-02:00 UTC"], actor="key:ops", reason="api"
    )
    assert made["managed_by"] == "api"

    kept_task = CONFIG.split("silences:")[0]  # the file without its silences
    diff = world.apply(kept_task)
    gone = "was made by the file but is no longer in it (delete it with --prune)"
    assert [line for line in diff.lines() if gone in line] == [
        f"  silence 1 task=weekly-vacuum during {WINDOW} {gone}",
        f"  silence 2 heartbeat=offsite-sync during {WINDOW} {gone}",
    ]
    assert len(list_silences(world.store)) == 3  # without --prune nothing goes
    diff = world.apply(kept_task, prune=True)
    assert len([line for line in diff.lines() if line.startswith("- delete silence")]) == 2
    assert [s["match"] for s in list_silences(world.store)] == [{"task": "other-task"}]  # the API's stays
    audit, _ = Upkeep(world.settings, world.store).list_audit(object_type="silence")
    assert [a["action"] for a in audit].count("delete") == 2


def test_each_match_key_fits_only_the_alerts_it_names():
    from upkeep.notify.silences import Subject, fits

    task = Subject(name="nightly-backup", task="nightly-backup", tiers=("daily",))
    target = Subject(name="target/services.api", task="health", tiers=("daily",), target="services.api")
    monitor = Subject(name="heartbeat/offsite-sync", heartbeat="offsite-sync")
    cases = {
        "task": ({"task": "nightly-backup"}, [task]),
        "task of a target's check": ({"task": "health"}, [target]),
        "target": ({"target": "services.api"}, [target]),
        "tier": ({"tier": "daily"}, [task, target]),
        "heartbeat": ({"heartbeat": "offsite-sync"}, [monitor]),
        "task on a channel": ({"task": "nightly-backup", "channel": "pager"}, []),  # the alert is on email
        "channel": ({"channel": "email"}, [task, target, monitor]),
    }
    for label, (match, fitting) in cases.items():
        assert [s for s in (task, target, monitor) if fits(match, s, "email")] == fitting, label
    assert fits({"task": "nightly-backup", "channel": "pager"}, task, "pager")

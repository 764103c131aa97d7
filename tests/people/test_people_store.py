"""Accounts and checklists on both stores: the migration makes exactly the tables the models
describe, ticks are decided once under concurrency, automatic items follow the latest judged run."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from upkeep.app import Upkeep
from upkeep.errors import Conflict, NotFound, UserError
from upkeep.people import accounts, checklists
from upkeep.people.checklists import NewItem
from upkeep.settings import Settings
from upkeep.store.models import Base, Run

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_the_migrations_make_the_tables_the_models_describe(store):
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []


def test_two_people_ticking_the_same_item_at_once_one_wins(store):
    opened = checklists.open_checklist(store, title="race", items=[NewItem("only item"), NewItem("other")])
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def tick(who: str) -> None:
        barrier.wait()
        try:
            checklists.check_item(store, opened["id"], 1, actor=f"user:{who}")
            outcomes.append("checked")
        except Conflict as exc:
            outcomes.append(f"conflict: {exc.message}")

    threads = [threading.Thread(target=tick, args=(who,)) for who in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(o.split(" by ")[0] for o in outcomes) == ["checked", "conflict: item 1 of checklist 1 was checked"]
    view = checklists.get_checklist(store, opened["id"])
    assert view["items"][0]["by"] in ("user:alice", "user:bob") and view["items_done"] == 1
    ticks = Upkeep(Settings(database_url=store.url), store).list_audit(object_type="checklist")[0]
    assert [e["action"] for e in ticks].count("check") == 1


def _probe(store) -> dict:
    service = Upkeep(Settings(database_url=store.url), store)
    return service.create_task({"name": "probe", "type": "debug.noop"}, actor="test")


def _run(store, task_id: int, *, finished: datetime, status="completed", outcome="ok", dry_run=False) -> int:
    with store.write() as s:
        run = Run(
            task_id=task_id,
            task_name="probe",
            task_type="debug.noop",
            origin="manual",
            status=status,
            outcome=outcome if status == "completed" else None,
            dry_run=dry_run,
            created_at=finished - timedelta(seconds=5),
            due_at=finished - timedelta(seconds=5),
            started_at=finished - timedelta(seconds=4),
            finished_at=finished,
        )
        s.add(run)
        s.flush()
        return run.id


def test_an_automatic_item_follows_the_latest_judged_run_within_its_window(store):
    task = Upkeep(Settings(database_url=store.url), store).create_task(
        {"name": "probe", "type": "debug.noop"}, actor="t"
    )
    item = NewItem("probe passed", source_task="probe", within_seconds=3600)

    def verdict(at: datetime) -> tuple[str, int | None]:
        evidence = checklists.preview(store, [item], at)[0]
        return evidence["verdict"], evidence.get("run_id")

    assert verdict(NOW) == ("missing", None)
    old_ok = _run(store, task["id"], finished=NOW - timedelta(hours=2))
    assert verdict(NOW) == ("missing", None)  # outside the window
    assert verdict(NOW - timedelta(hours=1, minutes=30)) == ("satisfied", old_ok)
    critical = _run(store, task["id"], finished=NOW - timedelta(minutes=20), outcome="critical")
    assert verdict(NOW) == ("failing", critical)
    _run(store, task["id"], finished=NOW - timedelta(minutes=10), status="skipped")  # says nothing either way
    _run(store, task["id"], finished=NOW - timedelta(minutes=9), outcome="ok", dry_run=True)  # changed nothing
    assert verdict(NOW) == ("failing", critical)
    failed = _run(store, task["id"], finished=NOW - timedelta(minutes=5), status="failed")
    assert verdict(NOW) == ("failing", failed)
    ok = _run(store, task["id"], finished=NOW - timedelta(minutes=1))
    assert verdict(NOW) == ("satisfied", ok)
    lenient = NewItem("probe ran", source_task="probe", within_seconds=3600, accept=("ok", "critical"))
    assert checklists.preview(store, [lenient], NOW - timedelta(minutes=15))[0]["verdict"] == "satisfied"
    assert checklists.preview(store, [NewItem("x", source_task="gone", within_seconds=60)], NOW)[0]["reason"] == (
        "no task named 'gone'"
    )


def test_an_open_item_fills_when_its_task_recovers_and_a_satisfied_checklist_completes(store):
    task = Upkeep(Settings(database_url=store.url), store).create_task(
        {"name": "probe", "type": "debug.noop"}, actor="t"
    )
    _run(store, task["id"], finished=NOW - timedelta(minutes=5), outcome="critical")
    item = NewItem("probe passed", source_task="probe", within_seconds=3600)
    opened = [
        checklists.open_checklist(store, title=f"day {n}", items=[item], due_at=NOW + timedelta(days=1), now=NOW)
        for n in (1, 2)
    ]
    assert all(o["status"] == "open" and o["items"][0]["evidence"]["verdict"] == "failing" for o in opened)
    recovered = _run(store, task["id"], finished=NOW + timedelta(minutes=1))
    with store.write() as s:
        assert checklists.due_notifications(s, NOW + timedelta(minutes=2)) == []
    for view in (checklists.get_checklist(store, o["id"]) for o in opened):
        assert (view["status"], view["outcome"], view["items"][0]["by"]) == ("completed", "ok", "task:probe")
        assert view["items"][0]["evidence"]["run_id"] == recovered


def test_ticks_refuse_what_does_not_exist_or_is_closed(store):
    opened = checklists.open_checklist(store, title="t", items=[NewItem("a")])
    with pytest.raises(NotFound, match="no checklist 99"):
        checklists.check_item(store, 99, 1, actor="user:a")
    with pytest.raises(NotFound, match=r"has no item 0 \(items 1-1\)"):
        checklists.check_item(store, opened["id"], 0, actor="user:a")
    with pytest.raises(UserError, match="needs a reason"):
        checklists.skip_item(store, opened["id"], 1, actor="user:a", reason="  ")
    checklists.skip_item(store, opened["id"], 1, actor="user:a", reason="not this week")
    with pytest.raises(Conflict, match="is completed"):
        checklists.check_item(store, opened["id"], 1, actor="user:b")


def test_accounts_on_both_stores(store):
    accounts.create_user(store, name="alice", role="viewer", password="long password", actor="t")
    with pytest.raises(Conflict):
        accounts.create_user(store, name="alice", role="viewer", password="long password", actor="t")
    assert accounts.sign_in(store, "alice", "long password").ok
    assert accounts.person_actor(store, "alice", role="viewer") == "user:alice"
    with pytest.raises(UserError, match="needs operator"):
        accounts.person_actor(store, "alice", role="operator")
    accounts.set_enabled(store, "alice", False, actor="t")
    with pytest.raises(UserError, match="disabled"):
        accounts.person_actor(store, "alice", role="viewer")

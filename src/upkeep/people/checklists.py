"""Checklists people sign off: the instances that ``checklist.run`` tasks open, and every tick on them.

A run of a ``checklist.run`` task opens one instance (``open_checklist``) and completes at once;
the instance lives on its own, with its due time, until every item is checked or skipped with a
reason. It then ends ``completed``, with outcome ``ok``, or ``warning`` when items were skipped.

An item is manual (a person checks or skips it) or automatic: it names a task and a window, and is
checked by upkeep itself once that task's latest run within the window completed with an
accepted outcome (``ok`` unless the item says otherwise). Its ``evidence`` says which run decided
and why; a failing automatic item stays open (the task may recover; a person may skip it, saying
why, or check it after seeing to it). Automatic items are evaluated when the instance opens, at
each tick, and by the alerter's periodic sweep (``due_notifications``), which also announces
reminders and the one overdue alert.

Every tick is audited, in its own transaction, under who made it (``user:NAME`` for a person,
``task:NAME`` for an automatic item) and when. Positions are 1-based, as ``show`` lists the items.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from upkeep.errors import Conflict, NotFound, UserError
from upkeep.store.audit import add_audit
from upkeep.store.db import Store
from upkeep.store.models import COMPLETED, FAILED, TIMED_OUT, Checklist, ChecklistItem, Run, ScheduledTask

OPEN = "open"
CHECKED, SKIPPED = "checked", "skipped"
STATUSES = (OPEN, COMPLETED)
Status = Literal["open", "completed"]
JUDGED_STATUSES = (COMPLETED, FAILED, TIMED_OUT)  # a skipped or cancelled run says nothing either way
MAX_NOTE = 2000


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class NewItem:
    """An item as ``checklist.run`` hands it over: manual, or automatic when ``source_task`` is set."""

    text: str
    source_task: str | None = None
    within_seconds: float | None = None
    accept: tuple[str, ...] = ("ok",)


# --- views -----------------------------------------------------------------------------------------


def item_view(item: ChecklistItem) -> dict[str, Any]:
    return {
        "position": item.position,
        "text": item.text,
        "kind": "automatic" if item.source_task else "manual",
        "task": item.source_task,
        "within_seconds": item.within_seconds,
        "accept": list(item.accept or []),
        "state": item.state,
        "by": item.done_by,
        "at": _iso(item.done_at),
        "note": item.note,
        "evidence": item.evidence,
    }


def checklist_view(checklist: Checklist, items: list[ChecklistItem], now: datetime) -> dict[str, Any]:
    done = [i for i in items if i.state != OPEN]
    return {
        "id": checklist.id,
        "title": checklist.title,
        "task_name": checklist.task_name,
        "run_id": checklist.run_id,
        "status": checklist.status,
        "outcome": checklist.outcome,
        "opened_at": _iso(checklist.opened_at),
        "due_at": _iso(checklist.due_at),
        "completed_at": _iso(checklist.completed_at),
        "overdue": checklist.status == OPEN and checklist.due_at is not None and checklist.due_at <= now,
        "items_total": len(items),
        "items_done": len(done),
        "items_skipped": sum(1 for i in items if i.state == SKIPPED),
        "items": [item_view(i) for i in items],
    }


def _items(s: Session, checklist_id: int) -> list[ChecklistItem]:
    query = sa.select(ChecklistItem).where(ChecklistItem.checklist_id == checklist_id).order_by(ChecklistItem.position)
    return list(s.execute(query).scalars())


def _items_of(s: Session, checklist_ids: list[int]) -> dict[int, list[ChecklistItem]]:
    """The items of many checklists, a few queries in all."""
    out: dict[int, list[ChecklistItem]] = {i: [] for i in checklist_ids}
    for start in range(0, len(checklist_ids), 500):
        chunk = checklist_ids[start : start + 500]
        query = sa.select(ChecklistItem).where(ChecklistItem.checklist_id.in_(chunk)).order_by(ChecklistItem.position)
        for item in s.execute(query).scalars():
            out[item.checklist_id].append(item)
    return out


def _find(s: Session, checklist_id: int, *, lock: bool = False) -> Checklist:
    query = sa.select(Checklist).where(Checklist.id == checklist_id)
    if lock:
        query = query.with_for_update()
    checklist = s.execute(query).scalars().first()
    if checklist is None:
        raise NotFound(f"no checklist {checklist_id}", hint="`upkeep checklists list` shows them", field="checklist")
    return checklist


# --- automatic items -------------------------------------------------------------------------------


def judge(s: Session, item: ChecklistItem | NewItem, now: datetime) -> dict[str, Any]:
    """The evidence for an automatic item: the latest judged run of its task within its window,
    and whether it satisfies the item (``verdict``: satisfied, failing or missing)."""
    source = item.source_task
    within = item.within_seconds or 0.0
    accept = list(item.accept or ["ok"])
    since = now - timedelta(seconds=within)
    task_id = s.execute(sa.select(ScheduledTask.id).where(ScheduledTask.name == source)).scalar()
    base = {"task": source, "window_start": since.isoformat(), "evaluated_at": now.isoformat()}
    if task_id is None:
        return {**base, "verdict": "missing", "reason": f"no task named {source!r}"}
    row = s.execute(
        sa.select(Run.id, Run.status, Run.outcome, Run.finished_at, Run.summary)
        .where(
            Run.task_id == task_id,
            Run.finished_at >= since,
            Run.status.in_(JUDGED_STATUSES),
            Run.dry_run.is_(False),
        )
        .order_by(Run.finished_at.desc(), Run.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return {**base, "verdict": "missing", "reason": f"{source} has not run within {_span(within)}"}
    run = {"run_id": row.id, "status": row.status, "outcome": row.outcome, "finished_at": row.finished_at.isoformat()}
    what = f"run {row.id} of {source} {row.status}" + (f" with outcome {row.outcome}" if row.outcome else "")
    if row.status == COMPLETED and (row.outcome or "ok") in accept:
        return {**base, **run, "verdict": "satisfied", "reason": what}
    return {**base, **run, "verdict": "failing", "reason": f"{what}; accepted: {', '.join(accept)}"}


def _span(seconds: float) -> str:
    if seconds % 86400 == 0:
        return f"{int(seconds // 86400)}d"
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds)}s"


def preview(store: Store, items: list[NewItem], now: datetime | None = None) -> list[dict[str, Any] | None]:
    """The evidence each automatic item would get now (None for a manual one); writes nothing."""
    now = _now(now)
    with store.read() as s:
        return [judge(s, item, now) if item.source_task else None for item in items]


def _evaluate(
    s: Session, checklist: Checklist, items: list[ChecklistItem], now: datetime, judged: dict | None = None
) -> None:
    """Fill the open automatic items whose task now satisfies them; record the others' evidence.
    ``judged`` keeps verdicts across checklists (open daily instances share their items)."""
    judged = {} if judged is None else judged
    for item in items:
        if item.state != OPEN or not item.source_task:
            continue
        key = (item.source_task, item.within_seconds, tuple(item.accept or ()))
        if key not in judged:
            judged[key] = judge(s, item, now)
        evidence = judged[key]
        if evidence["verdict"] == "satisfied":
            item.state, item.done_by, item.done_at, item.note = CHECKED, f"task:{item.source_task}", now, None
            add_audit(
                s,
                ts=now,
                actor=item.done_by,
                action="check",
                object_type="checklist",
                object_id=checklist.id,
                after={"item": item.position, "text": item.text, "run_id": evidence.get("run_id")},
                detail=f"item {item.position} checked automatically: {evidence['reason']}",
            )
        if {k: v for k, v in evidence.items() if k != "evaluated_at"} != {
            k: v for k, v in (item.evidence or {}).items() if k != "evaluated_at"
        }:
            item.evidence = evidence


def _complete_if_done(s: Session, checklist: Checklist, items: list[ChecklistItem], actor: str, now: datetime) -> None:
    if checklist.status != OPEN or any(i.state == OPEN for i in items):
        return
    skipped = [i.position for i in items if i.state == SKIPPED]
    checklist.status, checklist.completed_at = COMPLETED, now
    checklist.outcome = "warning" if skipped else "ok"
    add_audit(
        s,
        ts=now,
        actor=actor,
        action="complete",
        object_type="checklist",
        object_id=checklist.id,
        after={"status": COMPLETED, "outcome": checklist.outcome, "skipped": skipped},
        detail=f"checklist {checklist.id} completed, outcome {checklist.outcome}",
    )


# --- use cases -------------------------------------------------------------------------------------


def open_checklist(
    store: Store,
    *,
    title: str,
    items: list[NewItem],
    task_name: str | None = None,
    run_id: int | None = None,
    due_at: datetime | None = None,
    remind_every_seconds: float | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Open an instance (a ``checklist.run`` run does): its automatic items are judged at once."""
    if not items:
        raise UserError("a checklist needs at least one item", field="items")
    now = _now(now)
    with store.write() as s:
        task_id = None
        if task_name is not None:
            task_id = s.execute(sa.select(ScheduledTask.id).where(ScheduledTask.name == task_name)).scalar()
        checklist = Checklist(
            task_id=task_id,
            task_name=task_name,
            run_id=run_id,
            title=title,
            status=OPEN,
            opened_at=now,
            due_at=due_at,
            remind_every_seconds=remind_every_seconds,
        )
        s.add(checklist)
        s.flush()
        rows = [
            ChecklistItem(
                checklist_id=checklist.id,
                position=position,
                text=item.text,
                source_task=item.source_task,
                within_seconds=item.within_seconds,
                accept=list(item.accept) if item.source_task else [],
                state=OPEN,
            )
            for position, item in enumerate(items, 1)
        ]
        s.add_all(rows)
        opener = f"run:{run_id}" if run_id is not None else "upkeep"
        add_audit(
            s,
            ts=now,
            actor=opener,
            action="open",
            object_type="checklist",
            object_id=checklist.id,
            after={"title": title, "items": len(rows), "due_at": _iso(due_at), "task": task_name},
        )
        s.flush()
        _evaluate(s, checklist, rows, now)
        _complete_if_done(s, checklist, rows, opener, now)
        return checklist_view(checklist, rows, now)


def list_checklists(
    store: Store,
    *,
    status: str | None = None,
    task: str | None = None,
    limit: int = 50,
    offset: int = 0,
    now: datetime | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Instances, newest first (without their items' details)."""
    if status is not None and status not in STATUSES:
        raise UserError(f"unknown status {status!r}", hint=f"one of {', '.join(STATUSES)}", field="status")
    now = _now(now)
    query = sa.select(Checklist)
    if status:
        query = query.where(Checklist.status == status)
    if task:
        query = query.where(Checklist.task_name == task)
    with store.read() as s:
        total = s.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
        rows = list(s.execute(query.order_by(Checklist.id.desc()).offset(offset).limit(limit)).scalars())
        items = _items_of(s, [r.id for r in rows])
        views = []
        for row in rows:
            view = checklist_view(row, items[row.id], now)
            view.pop("items")
            views.append(view)
        return views, total


def get_checklist(store: Store, checklist_id: int, now: datetime | None = None) -> dict[str, Any]:
    with store.read() as s:
        checklist = _find(s, checklist_id)
        return checklist_view(checklist, _items(s, checklist.id), _now(now))


def check_item(
    store: Store,
    checklist_id: int,
    position: int,
    *,
    actor: str,
    note: str | None = None,
    detail: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A person checks an item (a note is optional)."""
    return _resolve(store, checklist_id, position, CHECKED, actor=actor, note=note, detail=detail, now=now)


def skip_item(
    store: Store,
    checklist_id: int,
    position: int,
    *,
    actor: str,
    reason: str,
    detail: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A person skips an item, saying why: the checklist then completes with outcome warning."""
    if not (reason or "").strip():
        raise UserError("skipping an item needs a reason", hint="say why it was not done", field="reason")
    return _resolve(store, checklist_id, position, SKIPPED, actor=actor, note=reason, detail=detail, now=now)


def _resolve(
    store: Store,
    checklist_id: int,
    position: int,
    state: str,
    *,
    actor: str,
    note: str | None,
    detail: str | None,
    now: datetime | None,
) -> dict[str, Any]:
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE:
        raise UserError(f"a note or reason has at most {MAX_NOTE} characters", field="note")
    now = _now(now)
    with store.write() as s:
        checklist = _find(s, checklist_id, lock=store.is_postgres)
        items = _items(s, checklist.id)
        if checklist.status != OPEN:
            raise Conflict(
                f"checklist {checklist.id} is {checklist.status} (outcome {checklist.outcome})",
                hint="a completed checklist does not change",
                field="checklist",
            )
        item = next((i for i in items if i.position == position), None)
        if item is None:
            raise NotFound(
                f"checklist {checklist.id} has no item {position} (items 1-{len(items)})",
                hint=f"`upkeep checklists show {checklist.id}` numbers them",
                field="item",
            )
        if item.state != OPEN:
            raise Conflict(
                f"item {position} of checklist {checklist.id} was {item.state} by {item.done_by}"
                f" at {_iso(item.done_at)}",
                field="item",
            )
        item.state, item.done_by, item.done_at, item.note = state, actor, now, note
        verb = "check" if state == CHECKED else "skip"
        after = {"item": position, "text": item.text, ("note" if state == CHECKED else "reason"): note}
        add_audit(
            s,
            ts=now,
            actor=actor,
            action=verb,
            object_type="checklist",
            object_id=checklist.id,
            after=after,
            detail=detail,
        )
        _evaluate(s, checklist, items, now)
        _complete_if_done(s, checklist, items, actor, now)
        return checklist_view(checklist, items, now)


# --- the alerter's sweep ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """A notification the alerter sends about an open checklist."""

    kind: str  # "reminder" | "overdue"
    checklist: dict[str, Any]


def due_notifications(s: Session, now: datetime) -> list[Due]:
    """In the alerter's transaction: judge the open checklists' automatic items (completing those
    now done), and mark and return the reminders due and the overdue alerts (once per instance)."""
    out: list[Due] = []
    open_rows = list(s.execute(sa.select(Checklist).where(Checklist.status == OPEN).order_by(Checklist.id)).scalars())
    items_of = _items_of(s, [c.id for c in open_rows])
    judged: dict = {}
    for checklist in open_rows:
        items = items_of[checklist.id]
        _evaluate(s, checklist, items, now, judged)
        _complete_if_done(s, checklist, items, "upkeep", now)
        if checklist.status != OPEN:
            continue
        overdue = checklist.due_at is not None and checklist.due_at <= now
        if overdue and checklist.overdue_alerted_at is None:
            checklist.overdue_alerted_at = now
            out.append(Due("overdue", checklist_view(checklist, items, now)))
        elif not overdue and checklist.remind_every_seconds:
            last = checklist.reminded_at or checklist.opened_at
            if now - last >= timedelta(seconds=checklist.remind_every_seconds):
                checklist.reminded_at = now
                out.append(Due("reminder", checklist_view(checklist, items, now)))
    return out

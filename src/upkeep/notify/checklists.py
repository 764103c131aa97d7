"""Checklist alerts: reminders while a checklist waits for sign-off, and one alert when it is overdue.

Called by the alerter on its overdue cycle, in its transaction (``Alerter.evaluate_once``):
``upkeep.people.checklists.due_notifications`` judges the open checklists' automatic items and
marks what is due, so each reminder and the overdue alert are decided once even with several
alerters. They go to the channels of the task that opened the checklist (its ``notify:``; the
overdue alert only with ``on_overdue``, the default), through the outbox, and a silence of that
task suppresses them as it does the task's own alerts.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from upkeep.notify.evaluation import TASK_COLUMNS, Evaluation
from upkeep.notify.messages import NOTIFY_TYPE, Message
from upkeep.people.checklists import OPEN, due_notifications
from upkeep.store.models import ScheduledTask

log = logging.getLogger(__name__)

LISTED_ITEMS = 20  # open items named in a message


def evaluate(evaluation: Evaluation) -> None:
    due = due_notifications(evaluation.s, evaluation.now)
    if not due:
        return
    names = sorted({d.checklist["task_name"] for d in due if d.checklist["task_name"]})
    tasks = {t.name: t for t in evaluation.s.execute(sa.select(*TASK_COLUMNS).where(ScheduledTask.name.in_(names)))}
    for notice in due:
        task = tasks.get(notice.checklist["task_name"])
        if task is None:
            log.info("checklist %s is %s; its task is gone, so nobody is told", notice.checklist["id"], notice.kind)
            continue
        spec = evaluation.spec(task)
        if notice.kind == "overdue" and not spec.on_overdue:
            continue
        for channel in evaluation.channel_names(task, spec):
            evaluation.send(
                task,
                channel,
                f"checklist_{notice.kind}",
                lambda notice=notice: checklist_message(notice.kind, notice.checklist, evaluation.alerter.link_base),
            )


def checklist_message(kind: str, checklist: dict[str, Any], link_base: str) -> Message:
    """``[upkeep] WARNING weekly-review: checklist 7 is overdue`` and the items still open."""
    severity = "WARNING" if kind == "overdue" else "INFO"
    task = checklist["task_name"] or "checklist"
    what = "is overdue" if kind == "overdue" else "waits for sign-off"
    title = f"[upkeep] {severity} {task}: checklist {checklist['id']} {what}"
    waiting = [i for i in checklist["items"] if i["state"] == OPEN]
    lines = [
        f"Checklist: {checklist['title']} ({checklist['id']})",
        f"Opened: {checklist['opened_at']}",
        f"Due: {checklist['due_at'] or 'no due time'}",
        f"Done: {checklist['items_done']} of {checklist['items_total']} items",
        "Still open:",
    ]
    for item in waiting[:LISTED_ITEMS]:
        evidence = item.get("evidence") or {}
        why = f" ({evidence['reason']})" if evidence.get("reason") else ""
        lines.append(f"- {item['position']}. {item['text']}{why}")
    if len(waiting) > LISTED_ITEMS:
        lines.append(f"- and {len(waiting) - LISTED_ITEMS} more")
    lines.append(f"Checklist: {link_base}/checklists/{checklist['id']}")
    return Message(title, "\n".join(lines), NOTIFY_TYPE[severity])

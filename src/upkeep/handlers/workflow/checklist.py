"""``checklist.run``: open a checklist for people to sign off, with items upkeep can check itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from upkeep.engine.context import RunContext
from upkeep.engine.registry import HandlerConfig, handler
from upkeep.engine.taskspec import parse_duration


def _duration(value: str | None) -> str | None:
    if value is not None and parse_duration(value) <= 0:  # a malformed one raises ValueError naming the forms
        raise ValueError(f"{value!r} is not a positive duration")
    return value


class ChecklistItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=1000, description="What a person checks, or what the task proves")
    task: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Makes the item automatic: checked once this task's latest run within `within` completed "
        "with an accepted outcome",
    )
    within: str | None = Field(None, description="The window of an automatic item, e.g. 26h (needs `task`)")
    accept: list[Literal["ok", "warning", "critical"]] = Field(
        default_factory=lambda: ["ok"], min_length=1, description="Outcomes that satisfy an automatic item"
    )

    @field_validator("within")
    @classmethod
    def _within(cls, value: str | None) -> str | None:
        return _duration(value)

    @model_validator(mode="after")
    def _automatic(self) -> ChecklistItem:
        if (self.task is None) != (self.within is None):
            raise ValueError("an automatic item needs both `task` and `within` (task: nightly-backup, within: 26h)")
        return self


class ChecklistConfig(HandlerConfig):
    title: str | None = Field(None, max_length=500, description="Default: the task's description, else its name")
    items: list[ChecklistItem] = Field(min_length=1, max_length=200, description="In the order people see them")
    due_within: str | None = Field(
        None, description="The instance is due this long after it opens (e.g. 3d); past it, one overdue alert"
    )
    remind_every: str | None = Field(
        None, description="Until it is due, remind the task's notify channels this often (e.g. 1d)"
    )

    @field_validator("due_within", "remind_every")
    @classmethod
    def _durations(cls, value: str | None) -> str | None:
        return _duration(value)


@handler("checklist.run", config=ChecklistConfig)
def run(ctx: RunContext, config: ChecklistConfig) -> dict:
    """Open a checklist instance for people to sign off, and complete at once.

    The instance lives on its own (``upkeep checklists``, the UI's Checklists page, the API) until
    every item is checked or skipped with a reason; it ends with outcome ok, or warning when items
    were skipped. An item with ``task`` and ``within`` is automatic: upkeep checks it once that task's
    latest run within the window completed with an accepted outcome, and shows the run that decided.
    Past ``due_within`` the task's ``notify`` channels get one overdue alert (``on_overdue``);
    ``remind_every`` sends reminders until then. A dry run opens nothing and says what it would open.
    """
    from upkeep.people.checklists import NewItem

    items = [
        NewItem(
            text=item.text,
            source_task=item.task,
            within_seconds=parse_duration(item.within) if item.within else None,
            accept=tuple(item.accept),
        )
        for item in config.items
    ]
    now = ctx.now()
    title = config.title or ctx.services.task_title(ctx.task_name) or "checklist"
    due_at = now + timedelta(seconds=parse_duration(config.due_within)) if config.due_within else None
    automatic = sum(1 for i in items if i.source_task)
    if ctx.dry_run:
        evidence = ctx.services.preview_checklist(items, now)
        ready = sum(1 for e in evidence if e and e["verdict"] == "satisfied")
        for position, found in enumerate(evidence, 1):
            if found:
                ctx.info("plan", f"item {position}: {found['verdict']} ({found['reason']})", item=position, **found)
        return {
            "outcome": "ok",
            "summary": f"would open {title!r}: {len(items)} items, {ready} of {automatic} automatic satisfied",
            "items": len(items),
            "evidence": evidence,
        }
    view = ctx.services.open_checklist(
        title=title,
        items=items,
        task_name=ctx.task_name,
        run_id=ctx.run_id,
        due_at=due_at,
        remind_every_seconds=parse_duration(config.remind_every) if config.remind_every else None,
        now=now,
    )
    filled = sum(1 for i in view["items"] if i["kind"] == "automatic" and i["state"] == "checked")
    failing = [i for i in view["items"] if i["kind"] == "automatic" and i["state"] == "open"]
    for item in failing:
        ctx.warning(
            "automatic_item_open",
            f"item {item['position']} ({item['text']}) stays open: {item['evidence']['reason']}",
            item=item["position"],
        )
    due = f", due {due_at.replace(microsecond=0).isoformat()}" if due_at else ""
    ctx.info("checklist_opened", f"checklist {view['id']} opened: {len(items)} items{due}", checklist_id=view["id"])
    return {
        "outcome": "ok",
        "summary": f"checklist {view['id']} opened: {len(items)} items, {filled} of {automatic} automatic filled{due}",
        "checklist_id": view["id"],
        "due_at": view["due_at"],
        "items": len(items),
        "automatic_filled": filled,
        "automatic_open": [i["position"] for i in failing],
    }

"""``/api/v1/checklists``: checklist instances, and people's ticks on their items.

Reading needs a viewer. Checking or skipping an item is a sign-off: it needs a person signed in
with their account (operator or admin), never an API key; it is audited under their name.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from upkeep.api.deps import get_upkeep
from upkeep.app import Upkeep
from upkeep.app.people import checklists
from upkeep.http.problems import problem_responses
from upkeep.http.security import Principal, require, require_viewer

router = APIRouter(tags=["checklists"])
require_signer = require("operator", person=True)
ChecklistId = Path(ge=1, le=2**53, description="Checklist id")
Position = Path(ge=1, le=10_000, description="The item's 1-based number, as the checklist lists it")


class Item(BaseModel):
    position: int
    text: str
    kind: str = Field(description="manual, or automatic (checked by the latest run of `task` within the window)")
    task: str | None
    within_seconds: float | None
    accept: list[str]
    state: str = Field(description="open, checked or skipped")
    by: str | None = Field(description="Who checked or skipped it: user:NAME, or task:NAME for an automatic item")
    at: str | None
    note: str | None = Field(description="A check's note or a skip's reason")
    evidence: dict[str, Any] | None = Field(description="An automatic item's last evaluation: the run that decided")


class ChecklistSummary(BaseModel):
    id: int
    title: str
    task_name: str | None
    run_id: int | None = Field(description="The run that opened it")
    status: str = Field(description="open or completed")
    outcome: str | None = Field(description="ok, or warning when items were skipped")
    opened_at: str
    due_at: str | None
    completed_at: str | None
    overdue: bool
    items_total: int
    items_done: int
    items_skipped: int


class ChecklistOut(ChecklistSummary):
    items: list[Item]


class ChecklistPage(BaseModel):
    items: list[ChecklistSummary]
    total: int
    limit: int
    offset: int


class Check(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=checklists.MAX_NOTE)


class Skip(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=checklists.MAX_NOTE, description="Why the item was not done")


@router.get("/checklists", response_model=ChecklistPage, responses=problem_responses(401, 403, 422))
def list_checklists(
    status: checklists.Status | None = Query(None, description="open or completed"),
    task: str | None = Query(None, max_length=200),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10**9),
    _: Principal = Depends(require_viewer),
    svc: Upkeep = Depends(get_upkeep),
) -> dict:
    """Checklist instances, newest first."""
    items, total = checklists.list_checklists(
        svc.store, status=status, task=task or None, limit=limit, offset=offset, now=svc.clock.now()
    )
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/checklists/{checklist_id}", response_model=ChecklistOut, responses=problem_responses(401, 403, 404, 422))
def get_checklist(
    checklist_id: int = ChecklistId, _: Principal = Depends(require_viewer), svc: Upkeep = Depends(get_upkeep)
) -> dict:
    """A checklist with its items, numbered as people tick them."""
    return checklists.get_checklist(svc.store, checklist_id, now=svc.clock.now())


@router.post(
    "/checklists/{checklist_id}/items/{position}/check",
    response_model=ChecklistOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="Check an item (a person)",
)
def check_item(
    body: Check | None = None,
    checklist_id: int = ChecklistId,
    position: int = Position,
    principal: Principal = Depends(require_signer),
    svc: Upkeep = Depends(get_upkeep),
) -> dict:
    return checklists.check_item(
        svc.store, checklist_id, position, actor=principal.actor, note=body.note if body else None, now=svc.clock.now()
    )


@router.post(
    "/checklists/{checklist_id}/items/{position}/skip",
    response_model=ChecklistOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="Skip an item, saying why (a person)",
)
def skip_item(
    body: Skip,
    checklist_id: int = ChecklistId,
    position: int = Position,
    principal: Principal = Depends(require_signer),
    svc: Upkeep = Depends(get_upkeep),
) -> dict:
    return checklists.skip_item(
        svc.store, checklist_id, position, actor=principal.actor, reason=body.reason, now=svc.clock.now()
    )

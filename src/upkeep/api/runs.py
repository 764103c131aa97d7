"""``/api/v1/runs``: list, read, events, cancel; and ``/api/v1/stats``."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from upkeep.api.deps import get_upkeep
from upkeep.api.schemas import RunEventOut, RunOut, RunPage, Stats
from upkeep.api.tasks import MAX_ID, Outcome, Status
from upkeep.app import Upkeep
from upkeep.app.redaction import safe
from upkeep.errors import UserError
from upkeep.http.problems import problem_responses
from upkeep.http.security import Principal, require_operator, require_viewer

router = APIRouter(tags=["runs"])
READ = problem_responses(401, 403, 404, 422)

RunId = Path(ge=1, le=MAX_ID, description="Run id")


def parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise UserError(
            f"since must be an ISO-8601 time with a UTC offset, e.g. 2024-05-01T00:00:00Z (got {text!r})",
            field="since",
        )
    return value


@router.get("/runs", response_model=RunPage, responses=READ, summary="List runs, newest first")
def list_runs(
    task: str | None = Query(
        None, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", description="Task id or name"
    ),
    status: Status | None = None,
    outcome: Outcome | None = None,
    task_type: str | None = Query(None, alias="type", max_length=200),
    since: str | None = Query(
        None,
        max_length=64,
        description="Runs created at or after this time (ISO-8601 with a UTC offset)",
        json_schema_extra={"format": "date-time"},
    ),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10**9),
    _: Principal = Depends(require_viewer),
    svc: Upkeep = Depends(get_upkeep),
) -> dict:
    since_at = parse_since(since)
    if task is not None and task.isdigit() and int(task) > MAX_ID:
        return {"items": [], "total": 0, "limit": limit, "offset": offset}
    items, total = svc.list_runs(
        task=task,
        status=status,
        outcome=outcome,
        task_type=task_type or None,
        since=since_at,
        limit=limit,
        offset=offset,
    )
    return {"items": safe(items), "total": total, "limit": limit, "offset": offset}


@router.get("/runs/{run_id}", response_model=RunOut, responses=READ, summary="Read a run")
def get_run(run_id: int = RunId, _: Principal = Depends(require_viewer), svc: Upkeep = Depends(get_upkeep)) -> dict:
    return safe(svc.get_run(run_id))


@router.get("/runs/{run_id}/events", response_model=list[RunEventOut], responses=READ, summary="A run's log")
def run_events(
    run_id: int = RunId,
    after: int = Query(0, ge=0, le=2**31, description="Only events with a sequence number above this"),
    limit: int = Query(1000, ge=1, le=5000),
    _: Principal = Depends(require_viewer),
    svc: Upkeep = Depends(get_upkeep),
) -> list:
    return safe(svc.run_events(run_id, after=after, limit=limit))


@router.post("/runs/{run_id}/cancel", response_model=RunOut, responses=READ, summary="Cancel a run")
def cancel_run(
    run_id: int = RunId, principal: Principal = Depends(require_operator), svc: Upkeep = Depends(get_upkeep)
) -> dict:
    """Pending runs end at once; a running run stops at its next check (or is killed after the
    grace period). Cancelling a finished run changes nothing."""
    return safe(svc.cancel_run(run_id, actor=principal.actor))


class RerunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    confirm: bool = Field(False, description="Approve a confirmed action (e.g. a restore) for this run only")


@router.post("/runs/{run_id}/rerun", response_model=RunOut, status_code=202, responses=READ, summary="Run a run again")
def rerun(
    body: RerunRequest | None = Body(None),
    run_id: int = RunId,
    principal: Principal = Depends(require_operator),
    svc: Upkeep = Depends(get_upkeep),
) -> dict:
    """Queue a new run of what this run ran: its task with the same overrides and dry-run flag, or
    the same one-off handler config. ``confirm`` is not carried over from the original run."""
    from upkeep.app.runs import rerun as rerun_run

    return safe(rerun_run(svc, run_id, actor=principal.actor, confirm=(body or RerunRequest()).confirm))


@router.get("/stats", response_model=Stats, responses=READ, tags=["stats"], summary="Counts over recent days")
def stats(
    days: int = Query(7, ge=1, le=366),
    _: Principal = Depends(require_viewer),
    svc: Upkeep = Depends(get_upkeep),
) -> dict:
    return safe(svc.stats(days=days))

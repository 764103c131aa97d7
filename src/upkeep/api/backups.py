"""``/api/v1/backups``: the per-source overview of the backup catalog, verify now, restore plan.

Reading needs the viewer role; verifying and planning a restore queue a run and need operator.
The use cases are ``upkeep.app.backups`` (the UI's /backups page calls the same).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from upkeep.api.deps import get_upkeep
from upkeep.api.schemas import RunOut
from upkeep.app import Upkeep
from upkeep.app import backups as use_cases
from upkeep.app.redaction import safe
from upkeep.http.problems import problem_responses
from upkeep.http.security import Principal, require_operator, require_viewer

router = APIRouter(prefix="/backups", tags=["backups"])
READ = problem_responses(401, 403, 404, 422)
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
Source = Path(min_length=1, max_length=200, pattern=NAME, description="A catalogued source")


class BackupChoice(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    backup: str = Field("latest", min_length=1, max_length=200, pattern=NAME, description="A backup id, or latest")


@router.get("", responses=READ, summary="Backups per source: newest, newest verified, age against the RPO")
def overview(_: Principal = Depends(require_viewer), svc: Upkeep = Depends(get_upkeep)) -> list[dict[str, Any]]:
    return safe(use_cases.overview(svc.store, svc.clock.now()))


@router.post("/{source}/verify", response_model=RunOut, status_code=202, responses=READ, summary="Verify now")
def verify(
    body: BackupChoice | None = Body(None),
    source: str = Source,
    principal: Principal = Depends(require_operator),
    svc: Upkeep = Depends(get_upkeep),
) -> dict:
    """Queue ``backup.verify`` of the source's newest backup (or the one named)."""
    choice = body or BackupChoice()
    return safe(use_cases.verify(svc, source, backup=choice.backup, actor=principal.actor))


@router.post("/{source}/restore-plan", response_model=RunOut, status_code=202, responses=READ, summary="Plan a restore")
def restore_plan(
    body: BackupChoice | None = Body(None),
    source: str = Source,
    principal: Principal = Depends(require_operator),
    svc: Upkeep = Depends(get_upkeep),
) -> dict:
    """Queue a dry run of ``backup.restore``: the plan, item by item, with nothing changed."""
    choice = body or BackupChoice()
    return safe(use_cases.restore_plan(svc, source, backup=choice.backup, actor=principal.actor))

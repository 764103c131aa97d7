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


def _queue_route(path: str, use_case, summary: str, description: str) -> None:
    """A route that queues one run about a source's backup through ``use_case`` (the operator's
    verify or restore plan); the route's name, and so its operation id, is the use case's."""

    @router.post(
        path,
        response_model=RunOut,
        status_code=202,
        responses=READ,
        summary=summary,
        description=description,
        name=use_case.__name__,
    )
    def queue(
        body: BackupChoice | None = Body(None),
        source: str = Source,
        principal: Principal = Depends(require_operator),
        svc: Upkeep = Depends(get_upkeep),
    ) -> dict:
        choice = body or BackupChoice()
        return safe(use_case(svc, source, backup=choice.backup, actor=principal.actor))


_queue_route(
    "/{source}/verify",
    use_cases.verify,
    "Verify now",
    "Queue ``backup.verify`` of the source's newest backup (or the one named).",
)
_queue_route(
    "/{source}/restore-plan",
    use_cases.restore_plan,
    "Plan a restore",
    "Queue a dry run of ``backup.restore``: the plan, item by item, with nothing changed.",
)

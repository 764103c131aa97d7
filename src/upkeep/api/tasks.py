"""``/api/v1/scheduled-tasks``: list, read, create, edit, delete, enable, disable, run.

Tasks are addressed by id or by name. Reads need the viewer role; enable, disable and run need
operator; create, edit and delete need admin. Every change goes through the application layer, which
writes the audit entry (actor ``key:<name>``). Host-scoped values (paths, DSNs, commands, signals,
modes, ``${env:...}`` references: ``upkeep.engine.hostscope``) cannot be set here, in a task or a
run's overrides (403 naming the field): tasks made here refer to the inventory by name.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from pydantic import ValidationError

from upkeep.api.deps import get_upkeep
from upkeep.api.schemas import RunOut, RunPage, RunRequest, Task, TaskCreate, TaskDetail, TaskPage, TaskPatch
from upkeep.api.validation import check_config, check_task
from upkeep.app import Upkeep
from upkeep.app.redaction import safe
from upkeep.app.terms import ALL_STATUSES, OUTCOMES, TaskSpec
from upkeep.http.problems import ProblemError, errors_from_validation, problem_responses
from upkeep.http.security import Principal, require_admin, require_operator, require_viewer

router = APIRouter(prefix="/scheduled-tasks", tags=["tasks"])

MAX_ID = 2**53  # ids beyond this cannot exist (and would overflow SQLite's integers)
Status = Literal[ALL_STATUSES]  # type: ignore[valid-type]
Outcome = Literal[OUTCOMES]  # type: ignore[valid-type]
Tier = Literal["daily", "weekly", "monthly", "quarterly", "yearly"]
READ = problem_responses(401, 403, 404, 422)
WRITE = problem_responses(401, 403, 404, 409, 422)


def task_ref(
    ref: str = Path(
        description="Task id or name", min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
    ),
) -> str:
    if ref.isdigit() and len(ref) > 15 and int(ref) > MAX_ID:
        raise ProblemError(404, f"no task {ref!r}", field="task", hint="GET /api/v1/scheduled-tasks lists them")
    return ref


@router.get("", response_model=TaskPage, responses=READ, summary="List tasks")
def list_tasks(
    enabled: bool | None = None,
    tier: Tier | None = None,
    task_type: str | None = Query(None, alias="type", max_length=200, description="Handler name or alias"),
    last_status: Status | None = None,
    search: str | None = Query(None, max_length=200, description="Part of the task name"),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10**9),
    _: Principal = Depends(require_viewer),
    svc: Upkeep = Depends(get_upkeep),
) -> dict:
    items, total = svc.list_tasks(
        enabled=enabled,
        tier=tier,
        task_type=task_type or None,
        last_status=last_status,
        search=search or None,
        limit=limit,
        offset=offset,
    )
    return {"items": safe(items), "total": total, "limit": limit, "offset": offset}


@router.post("", response_model=TaskDetail, status_code=201, responses=WRITE, summary="Create a task")
def create_task(
    body: TaskCreate,
    principal: Principal = Depends(require_admin),
    svc: Upkeep = Depends(get_upkeep),
) -> dict:
    data = body.model_dump(mode="json", exclude_unset=True)
    check_task(svc.registry, data)
    view = svc.create_task(data, actor=principal.actor)
    return safe(svc.get_task(view["id"]))


@router.get("/{ref}", response_model=TaskDetail, responses=READ, summary="Read a task")
def get_task(
    ref: str = Depends(task_ref), _: Principal = Depends(require_viewer), svc: Upkeep = Depends(get_upkeep)
) -> dict:
    return safe(svc.get_task(ref))


def _check_edit(registry):
    """422 naming every field at fault, of the edit as the application layer will validate it."""

    def check(name: str, task_type: str, changes: dict[str, Any]) -> None:
        others = {k: v for k, v in changes.items() if k != "config"}
        if others:
            try:
                TaskSpec.model_validate({"name": name, "type": task_type, **others})
            except ValidationError as exc:
                errors = errors_from_validation(exc)
                raise ProblemError(
                    422, "invalid change: " + errors[0]["message"], field=errors[0]["field"], errors=errors
                ) from None
        if "config" in changes:
            check_config(registry, task_type, changes["config"])

    return check


@router.patch("/{ref}", response_model=TaskDetail, responses=WRITE, summary="Edit a task")
def patch_task(
    body: TaskPatch,
    ref: str = Depends(task_ref),
    principal: Principal = Depends(require_admin),
    svc: Upkeep = Depends(get_upkeep),
) -> dict:
    """A merge-patch: ``config`` keys set to ``null`` are removed, a secret sent back redacted keeps its value."""
    changes = body.model_dump(mode="json", exclude_unset=True)
    view = svc.update_task(ref, changes, actor=principal.actor, patch=True, check=_check_edit(svc.registry))
    return safe(svc.get_task(view["id"]))


@router.delete("/{ref}", status_code=204, response_class=Response, responses=WRITE, summary="Delete a task")
def delete_task(
    ref: str = Depends(task_ref), principal: Principal = Depends(require_admin), svc: Upkeep = Depends(get_upkeep)
) -> Response:
    svc.delete_task(ref, actor=principal.actor)
    return Response(status_code=204)


@router.post("/{ref}/enable", response_model=Task, responses=WRITE, summary="Enable a task")
def enable_task(
    ref: str = Depends(task_ref),
    principal: Principal = Depends(require_operator),
    svc: Upkeep = Depends(get_upkeep),
) -> dict:
    return safe(svc.set_enabled(ref, True, actor=principal.actor))


@router.post("/{ref}/disable", response_model=Task, responses=WRITE, summary="Disable a task")
def disable_task(
    ref: str = Depends(task_ref),
    principal: Principal = Depends(require_operator),
    svc: Upkeep = Depends(get_upkeep),
) -> dict:
    return safe(svc.set_enabled(ref, False, actor=principal.actor))


@router.post("/{ref}/run", response_model=RunOut, status_code=202, responses=WRITE, summary="Run a task now")
def run_task(
    body: RunRequest | None = Body(None),
    ref: str = Depends(task_ref),
    principal: Principal = Depends(require_operator),
    svc: Upkeep = Depends(get_upkeep),
) -> dict:
    """Queue a run now (answers 202 with the pending run). ``overrides`` may only set the
    handler's overridable fields; ``dry_run`` reports without changing anything."""
    body = body or RunRequest()
    view = svc.trigger(
        ref,
        actor=principal.actor,
        overrides=body.overrides,
        dry_run=body.dry_run,
        confirm=body.confirm,
        check=lambda task_type, config: check_config(svc.registry, task_type, config, prefix="overrides"),
    )
    return safe(view)


@router.get("/{ref}/runs", response_model=RunPage, responses=READ, summary="A task's runs")
def task_runs(
    ref: str = Depends(task_ref),
    status: Status | None = None,
    outcome: Outcome | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10**9),
    _: Principal = Depends(require_viewer),
    svc: Upkeep = Depends(get_upkeep),
) -> dict:
    items, total = svc.list_runs(task=ref, status=status, outcome=outcome, limit=limit, offset=offset)
    return {"items": safe(items), "total": total, "limit": limit, "offset": offset}

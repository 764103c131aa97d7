"""The UI's task pages: the list (``/tasks``), one task with its runs and its duration chart
(``/tasks/{ref}``), and the creation page ``/tasks/new`` (``?type=`` a handler type, ``?from=`` a
task to clone), which comes first: ``new`` is not a task.

The creation form is generated from the handler's config model with the inventory's names as
pickers (``upkeep.web.forms``) and POSTs to ``/api/v1/scheduled-tasks``, as any API client would; what
the page offers is decided by ``upkeep.app.tasks``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from upkeep.app import tasks as task_cases
from upkeep.app.pages import task_rows
from upkeep.app.redaction import safe
from upkeep.app.terms import ALL_STATUSES, load_targets
from upkeep.errors import NotFound, UserError
from upkeep.web.charts import duration_chart
from upkeep.web.forms import fields_from_schema
from upkeep.web.render import (
    PAGE_SIZE,
    axis_time,
    error_page,
    listing,
    render,
    require_admin,
    require_login,
    upkeep_of,
    viewer_zone,
    wants_fragment,
)

router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=1)
def zones() -> list[str]:
    return sorted(z for z in available_timezones() if "/" in z or z == "UTC")


@router.get("/tasks/new", response_class=HTMLResponse)
def new_task_page(
    request: Request,
    type: str | None = Query(None, max_length=200),
    from_: str | None = Query(None, alias="from", max_length=200),
) -> Response:
    principal = require_admin(request, "creating tasks")
    svc = request.app.state.upkeep
    types = task_cases.creatable_types(svc.registry)
    hidden = sorted(spec.name for spec in svc.registry.all() if spec not in types)
    spec: dict = {"timezone": "UTC"}
    clone = None
    if from_:
        try:
            clone = task_cases.clone(svc, from_)
        except (NotFound, UserError) as exc:
            return error_page(request, principal, 404, str(exc), nav="tasks")
        clone["source"] = from_
        spec = safe(clone["spec"])  # secrets never reach a page; the YAML keeps ${env:...} references
        if clone["fields"]:
            clone["yaml"] = task_cases.task_yaml(spec)
        type = spec["type"]
    handler, fields = None, []
    if type:
        try:
            handler_spec = svc.registry.get(type)
        except UserError as exc:
            return error_page(request, principal, 404, str(exc), nav="tasks")
        if handler_spec in types or clone:
            handler = handler_spec.describe()
            defaults = handler_spec.defaults()
            values = {**defaults, **(spec.get("config") or {})}
            inventory = load_targets(svc.store)
            fields = fields_from_schema(handler_spec.json_schema(), values, inventory=inventory, defaults=defaults)
    heading = f"Clone {from_}" if from_ else "New task"
    return render(
        request,
        "task_new.html",
        principal,
        heading=heading,
        types=types,
        hidden_types=hidden,
        handler=handler,
        fields=fields,
        spec=spec,
        clone=clone,
        zones=zones(),
        nav="tasks",
    )


@router.get("/tasks", response_class=HTMLResponse)
def tasks_page(
    request: Request,
    enabled: str | None = Query(None, max_length=5),
    type: str | None = Query(None, max_length=200),
    last_status: str | None = Query(None, max_length=20),
    search: str | None = Query(None, max_length=200),
    offset: int = Query(0, ge=0, le=10**9),
) -> Response:
    principal = require_login(request)
    svc = upkeep_of(request)
    filters = {
        "enabled": {"true": True, "false": False}.get(enabled or ""),
        "task_type": type or None,
        "last_status": last_status if last_status in ALL_STATUSES else None,
        "search": search or None,
    }
    page = listing(
        lambda: task_rows(request.app.state.store, svc.registry, **filters, limit=PAGE_SIZE, offset=offset),
        offset,
        enabled=enabled,
        type=type,
        last_status=last_status,
        search=search,
    )
    items = page.pop("items")
    context = dict(
        recent=request.app.state.queries.recent_outcomes([t["id"] for t in items]),
        tasks=safe(items),
        **page,
        statuses=ALL_STATUSES,
        handlers={spec.name: spec for spec in svc.registry.all()},
        nav="tasks",
    )
    name = "_tasks_table.html" if wants_fragment(request) else "tasks.html"
    return render(request, name, principal, **context)


def _task_or_404(request: Request, ref: str) -> dict[str, Any]:
    if len(ref) > 200:
        raise NotFound(f"no task {ref[:50]!r}...")
    if ref.isdigit() and (not ref.isascii() or len(ref) > 15):
        raise NotFound(f"no task {ref!r}", field="task")
    return safe(upkeep_of(request).get_task(ref))


@router.get("/tasks/{ref}", response_class=HTMLResponse)
def task_page(request: Request, ref: str) -> Response:
    principal = require_login(request)
    svc = upkeep_of(request)
    try:
        task = _task_or_404(request, ref)
    except NotFound as exc:
        return error_page(request, principal, 404, str(exc), nav="tasks")
    try:
        spec = svc.registry.get(task["type"])
    except UserError:  # a plug-in handler that is no longer installed: show the task, no form
        handler, fields = (
            {"name": task["type"], "summary": "(handler not installed)", "overridable": [], "destructive": False},
            [],
        )
    else:
        handler = spec.describe()
        values = {**spec.defaults(), **task["config"]}
        fields = fields_from_schema(spec.json_schema(), values, inventory=load_targets(svc.store))
    runs, runs_total = svc.list_runs(task=task["id"], limit=20)
    history = request.app.state.queries.task_history(task["id"], limit=40)
    with viewer_zone(principal.timezone):  # the chart's axis in the viewer's zone
        chart = duration_chart(history, axis_time)
    return render(
        request,
        "task.html",
        principal,
        task=task,
        handler=handler,
        fields=fields,
        runs=safe(runs),
        runs_total=runs_total,
        chart=chart,
        chart_zone=principal.timezone or "UTC",
        drift_yaml=_drift_yaml(request, task),
        nav="tasks",
    )


def _drift_yaml(request: Request, task: dict[str, Any]) -> str | None:
    """The upkeep.yaml entry that makes the file match a file-made task edited here."""
    if not task.get("drift"):
        return None
    return task_cases.task_yaml(safe(task_cases.stored(request.app.state.store, task["id"])))

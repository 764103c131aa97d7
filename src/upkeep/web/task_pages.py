"""The UI's task creation page: ``/tasks/new`` (``?type=`` a handler type, ``?from=`` a task to clone).

The form is generated from the handler's config model with the inventory's names as pickers
(``upkeep.web.forms``) and POSTs to ``/api/v1/scheduled-tasks``, as any API client would; what
the page offers is decided by ``upkeep.app.tasks``.
"""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import available_timezones

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from upkeep.api.redaction import safe
from upkeep.app import tasks as task_cases
from upkeep.app.terms import load_targets
from upkeep.errors import NotFound, UserError
from upkeep.web.forms import fields_from_schema
from upkeep.web.routes import _principal, _render

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
    principal = _principal(request)
    if not principal.can("admin"):
        return _render(
            request,
            "error.html",
            principal,
            status=403,
            heading="Forbidden",
            message="creating tasks needs the admin role",
        )
    svc = request.app.state.upkeep
    types = task_cases.creatable_types(svc.registry)
    hidden = sorted(spec.name for spec in svc.registry.all() if spec not in types)
    spec: dict = {"timezone": "UTC"}
    clone = None
    if from_:
        try:
            clone = task_cases.clone(svc, from_)
        except (NotFound, UserError) as exc:
            return _render(request, "error.html", principal, status=404, message=str(exc), nav="tasks")
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
            return _render(request, "error.html", principal, status=404, message=str(exc), nav="tasks")
        if handler_spec in types or clone:
            handler = handler_spec.describe()
            defaults = handler_spec.defaults()
            values = {**defaults, **(spec.get("config") or {})}
            inventory = load_targets(svc.store)
            fields = fields_from_schema(handler_spec.json_schema(), values, inventory=inventory, defaults=defaults)
    heading = f"Clone {from_}" if from_ else "New task"
    return _render(
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

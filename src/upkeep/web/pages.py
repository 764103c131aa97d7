"""The UI's dashboard (``/``) and its one-table pages: ``/backups``, ``/targets``, ``/audit``,
``/handlers`` and (admins) ``/keys``.

The backups and targets pages read through the use cases the API shares (``upkeep.app.backups``,
``upkeep.app.alerts``); the verify and restore-plan buttons are fetch calls to ``/api/v1/backups/...``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from upkeep.app import backups as backup_cases
from upkeep.app import keys as key_cases
from upkeep.app import tasks as task_cases
from upkeep.app.alerts import open_alert_count, targets_overview
from upkeep.app.redaction import safe
from upkeep.app.terms import load_targets
from upkeep.web.charts import KINDS, chart_kind, runs_per_day_chart, sparkline
from upkeep.web.forms import fields_from_schema
from upkeep.web.render import (
    PAGE_SIZE,
    fmt_size,
    render,
    require_admin,
    require_login,
    templates,
    upkeep_of,
    wants_fragment,
)

router = APIRouter(include_in_schema=False)
CHECKED_KINDS = ("services", "databases")  # the kinds health checks report on
templates.env.globals.update(sparkline=sparkline)


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request) -> Response:
    principal = require_login(request)
    data = safe(request.app.state.queries.dashboard(days=7))
    store, now = request.app.state.store, upkeep_of(request).clock.now()
    alerting = {"alerts": open_alert_count(store), "targets": safe(targets_overview(store, now))}
    per_day = runs_per_day_chart(_by_kind(request.app.state.queries.runs_per_day(30)))
    drifted = task_cases.drifted(store)
    name = "_dashboard.html" if wants_fragment(request) else "dashboard.html"
    return render(request, name, principal, d=data, a=alerting, per_day=per_day, drifted=drifted, nav="dashboard")


def _by_kind(days: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for day in days:
        row = dict.fromkeys(KINDS, 0)
        for (status, outcome), n in day["counts"].items():
            kind = chart_kind(status, outcome)
            if kind in row:
                row[kind] += n
        out.append({"day": day["day"], **row})
    return out


@router.get("/backups", response_class=HTMLResponse)
def backups_page(request: Request) -> Response:
    principal = require_login(request)
    svc = request.app.state.upkeep
    sources = safe(backup_cases.overview(svc.store, svc.clock.now()))
    name = "_backups_list.html" if wants_fragment(request) else "backups.html"
    return render(request, name, principal, sources=sources, size=fmt_size, nav="backups")


@router.get("/targets", response_class=HTMLResponse)
def targets_page(request: Request) -> Response:
    principal = require_login(request)
    store = request.app.state.store
    checked = safe(targets_overview(store, request.app.state.upkeep.clock.now()))
    inventory = load_targets(store)
    others = {
        kind: sorted(entries)
        for kind, entries in inventory.items()
        if kind not in CHECKED_KINDS and isinstance(entries, dict) and entries
    }
    name = "_targets_list.html" if wants_fragment(request) else "targets.html"
    return render(request, name, principal, targets=checked, others=others, nav="targets")


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    object_type: str | None = Query(None, max_length=50),
    object_id: str | None = Query(None, max_length=200),
    offset: int = Query(0, ge=0, le=10**9),
) -> Response:
    principal = require_login(request)
    items, total = upkeep_of(request).list_audit(
        limit=PAGE_SIZE, offset=offset, object_type=object_type or None, object_id=object_id or None
    )
    query = {k: v for k, v in {"object_type": object_type, "object_id": object_id}.items() if v}
    return render(
        request,
        "audit.html",
        principal,
        entries=safe(items),
        total=total,
        offset=offset,
        limit=PAGE_SIZE,
        query=query,
        nav="audit",
    )


@router.get("/handlers", response_class=HTMLResponse)
def handlers_page(request: Request) -> Response:
    principal = require_login(request)
    handlers = []
    for spec in upkeep_of(request).registry.all():
        info = spec.describe()
        info["fields"] = fields_from_schema(info["config_schema"])
        handlers.append(info)
    return render(request, "handlers.html", principal, handlers=handlers, nav="handlers")


@router.get("/keys", response_class=HTMLResponse)
def keys_page(request: Request) -> Response:
    principal = require_admin(request, "the key page", nav="keys")
    name = "_keys_table.html" if wants_fragment(request) else "keys.html"
    return render(request, name, principal, keys=key_cases.list_keys(request.app.state.store), nav="keys")

"""The UI's pages for backups and targets: ``/backups`` and ``/targets``.

Both read through the use cases the API shares (``upkeep.app.backups``, ``upkeep.app.alerts``);
the verify and restore-plan buttons are fetch calls to ``/api/v1/backups/...``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from upkeep.api.redaction import safe
from upkeep.app import backups as backup_cases
from upkeep.app.alerts import targets_overview
from upkeep.app.terms import load_targets
from upkeep.web.charts import sparkline
from upkeep.web.routes import _fragment, _principal, _render, fmt_size, templates

router = APIRouter(include_in_schema=False)
CHECKED_KINDS = ("services", "databases")  # the kinds health checks report on
templates.env.globals.update(sparkline=sparkline)


@router.get("/backups", response_class=HTMLResponse)
def backups_page(request: Request) -> Response:
    principal = _principal(request)
    svc = request.app.state.upkeep
    sources = safe(backup_cases.overview(svc.store, svc.clock.now()))
    name = "_backups_list.html" if _fragment(request) else "backups.html"
    return _render(request, name, principal, sources=sources, size=fmt_size, nav="backups")


@router.get("/targets", response_class=HTMLResponse)
def targets_page(request: Request) -> Response:
    principal = _principal(request)
    store = request.app.state.store
    checked = safe(targets_overview(store, request.app.state.upkeep.clock.now()))
    inventory = load_targets(store)
    others = {
        kind: sorted(entries)
        for kind, entries in inventory.items()
        if kind not in CHECKED_KINDS and isinstance(entries, dict) and entries
    }
    name = "_targets_list.html" if _fragment(request) else "targets.html"
    return _render(request, name, principal, targets=checked, others=others, nav="targets")

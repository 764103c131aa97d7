"""The UI's run pages: the list (``/runs``, filtered by status, outcome and task) and one run with
its events and, while it waits for one, its approval (``/runs/{id}``). Cancelling and approving are
fetch calls to ``/api/v1``.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from upkeep.app.redaction import safe
from upkeep.app.terms import ACTIVE_STATUSES, ALL_STATUSES, OUTCOMES
from upkeep.errors import NotFound
from upkeep.web.render import PAGE_SIZE, error_page, listing, page_id, render, require_login, upkeep_of, wants_fragment

router = APIRouter(include_in_schema=False)


@router.get("/runs", response_class=HTMLResponse)
def runs_page(
    request: Request,
    status: str | None = Query(None, max_length=20),
    outcome: str | None = Query(None, max_length=20),
    task: str | None = Query(None, max_length=200),
    offset: int = Query(0, ge=0, le=10**9),
) -> Response:
    principal = require_login(request)
    page = listing(
        lambda: upkeep_of(request).list_runs(
            task=task or None,
            status=status if status in ALL_STATUSES else None,
            outcome=outcome if outcome in OUTCOMES else None,
            limit=PAGE_SIZE,
            offset=offset,
        ),
        offset,
        status=status,
        outcome=outcome,
        task=task,
    )
    runs = safe(page.pop("items"))
    name = "_runs_table.html" if wants_fragment(request) else "runs.html"
    return render(request, name, principal, runs=runs, **page, statuses=ALL_STATUSES, outcomes=OUTCOMES, nav="runs")


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str) -> Response:
    principal = require_login(request)
    try:
        run = safe(upkeep_of(request).get_run(page_id(run_id, "run")))
    except NotFound as exc:
        return error_page(request, principal, 404, str(exc), nav="runs")
    events = safe(upkeep_of(request).run_events(run["id"], limit=5000))
    approval = None
    if run["status"] == "waiting":
        from upkeep.app.people import approvals

        approval = approvals.pending_for_run(upkeep_of(request).store, run["id"])
    return render(
        request,
        "run.html",
        principal,
        run=run,
        events=events,
        active=run["status"] in ACTIVE_STATUSES,
        approval=approval,
        nav="runs",
    )

"""The UI's heartbeat pages: the monitor list and a monitor's page (status, ping URL, recent pings).

Pause and resume are fetch calls to ``/api/v1/heartbeats/{id}/pause|resume`` with the page's CSRF
token, as every UI action is; the ping URL (which holds the token) is shown to admins only.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from upkeep.app.heartbeats import STATUSES, monitors
from upkeep.errors import NotFound
from upkeep.web.render import error_page, render, require_login, wants_fragment

router = APIRouter(include_in_schema=False)
BADGE = {"up": "ok", "late": "warning", "down": "failed", "running": "running", "new": "skipped", "paused": "skipped"}


def _now(request: Request):
    return request.app.state.upkeep.clock.now()


@router.get("/heartbeats", response_class=HTMLResponse)
def heartbeats_page(
    request: Request,
    status: str | None = Query(None, max_length=20),
    search: str | None = Query(None, max_length=200),
) -> Response:
    principal = require_login(request)
    items = monitors.list_heartbeats(
        request.app.state.store,
        _now(request),
        status=status if status in STATUSES else None,
        search=search or None,
    )
    query = {k: v for k, v in {"status": status, "search": search}.items() if v}
    name = "_heartbeats_table.html" if wants_fragment(request) else "heartbeats.html"
    return render(
        request, name, principal, heartbeats=items, query=query, statuses=STATUSES, badge=BADGE, nav="heartbeats"
    )


@router.get("/heartbeats/{ref}", response_class=HTMLResponse)
def heartbeat_page(request: Request, ref: str) -> Response:
    principal = require_login(request)
    try:
        if len(ref) > 200 or (ref.isdigit() and len(ref) > 15):
            raise NotFound(f"no heartbeat monitor {ref[:50]!r}", field="heartbeat")
        monitor = monitors.get_heartbeat(
            request.app.state.store,
            ref,
            _now(request),
            settings=request.app.state.settings,
            with_url=principal.can("admin"),
            pings=50,
        )
    except NotFound as exc:
        return error_page(request, principal, 404, str(exc), nav="heartbeats")
    return render(request, "heartbeat.html", principal, hb=monitor, badge=BADGE, nav="heartbeats")

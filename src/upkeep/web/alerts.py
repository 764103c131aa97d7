"""The UI's alert pages: ``/alerts`` (open, acknowledged and resolved alerts with their messages,
the silences, the channels with a "Send test" button and the recent notifications with their
delivery status) and the signed acknowledge link of an alert's messages.

Acknowledging, silencing and ending a silence are fetch calls to ``/api/v1`` with the page's CSRF
token, as every UI action is. The link ``/alerts/ack/{link}`` needs no login: the signed token is
the permission, for that one alert. Its GET only shows the alert (mail scanners follow links);
the button on that page POSTs the acknowledgement.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response

from upkeep.app import alerts as use_cases
from upkeep.app import notifications
from upkeep.app.redaction import safe
from upkeep.errors import Conflict, NotFound
from upkeep.notify.silences import MATCH_KEYS
from upkeep.web.render import error_page, render, require_login, wants_fragment

router = APIRouter(include_in_schema=False)
BADGE = {"open": "failed", "acknowledged": "warning", "resolved": "ok"}
DELIVERY_BADGE = {
    "sent": "ok",
    "suppressed": "skipped",
    "queued": "running",
    "retrying": "warning",
    "failed": "failed",
    "dropped": "failed",
}
Link = Path(min_length=1, max_length=300)


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(request: Request) -> Response:
    principal = require_login(request)
    store = request.app.state.store
    current = use_cases.list_alerts(store, state="open") + use_cases.list_alerts(store, state="acknowledged")
    context = dict(
        current=safe(current),
        resolved=safe(use_cases.list_alerts(store, state="resolved", limit=50)),
        silences=use_cases.list_silences(store, include_ended=False, now=request.app.state.upkeep.clock.now()),
        channels=notifications.list_channels(store),
        notifications=notifications.recent_notifications(store, limit=50),
        match_keys=MATCH_KEYS,
        badge=BADGE,
        delivery_badge=DELIVERY_BADGE,
        nav="alerts",
    )
    name = "_alerts_list.html" if wants_fragment(request) else "alerts.html"
    return render(request, name, principal, **context)


def _link_page(request: Request, link: str, *, acknowledge: bool) -> Response:
    store = request.app.state.store
    try:
        if acknowledge:
            alert = use_cases.acknowledge_link(store, link, now=request.app.state.upkeep.clock.now())
            done = "acknowledged"
        else:
            alert = use_cases.alert_for_link(store, link)
            done = None
    except NotFound as exc:
        return error_page(request, None, 404, exc.message)
    except Conflict as exc:
        return error_page(request, None, 409, exc.message, heading="Already resolved")
    return render(request, "ack.html", None, alert=safe(alert), link=link, done=done, badge=BADGE)


@router.get("/alerts/ack/{link}", response_class=HTMLResponse)
def ack_link_page(request: Request, link: str = Link) -> Response:
    return _link_page(request, link, acknowledge=False)


@router.post("/alerts/ack/{link}", response_class=HTMLResponse)
def ack_link(request: Request, link: str = Link) -> Response:
    return _link_page(request, link, acknowledge=True)

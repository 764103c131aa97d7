"""What every page of the admin UI uses: the templates and their filters (times in the viewer's zone,
sizes, durations), rendering a page, its error pages, and who is signed in (``require_login``, else
``LoginRequired`` and a redirect to ``/login``). Sign-in itself is ``upkeep.web.login``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from upkeep.clock import format_time, relative, zone
from upkeep.errors import NotFound, UserError
from upkeep.http.security import Principal, authenticate
from upkeep.web.charts import legend, outcome_class, outcome_strip
from upkeep.web.forms import UNITS, duration_shown

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
PAGE_SIZE = 50


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_VIEWER_TZ: ContextVar[str | None] = ContextVar("viewer_tz", default=None)  # the signed-in person's time zone
_NOW: ContextVar[datetime | None] = ContextVar("page_now", default=None)  # the service clock's now, per page


@contextmanager
def viewer_zone(tz: str | None) -> Iterator[None]:
    """Times shown (``fmt_ts``, ``axis_time``) in ``tz`` while inside: the signed-in person's zone."""
    token = _VIEWER_TZ.set(tz)
    try:
        yield
    finally:
        _VIEWER_TZ.reset(token)


_zone = zone  # a zone this machine does not know: UTC, labelled as such


def fmt_ts(value: str | None, tz: str | None = None) -> str:
    """A time with its zone: in ``tz`` (a schedule's own zone), else the signed-in person's zone,
    else UTC. A browser may re-render it in its stored preference (app.js), never without a zone."""
    return format_time(_parse(value), tz or _VIEWER_TZ.get())


def fmt_relative(value: str | None, now: datetime | None = None) -> str:
    """ "in 3 min", "2 h ago": how far a time is from now, in the largest unit that fits."""
    return relative(_parse(value), now or _NOW.get() or datetime.now(UTC))


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 120:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


def fmt_size(n: int | None) -> str:
    """Bytes in binary units, as ``upkeep backups list`` shows them."""
    if n is None:
        return "—"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def fmt_percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


templates.env.filters.update(
    ts=fmt_ts, relative=fmt_relative, duration=fmt_duration, percent=fmt_percent, pretty=pretty_json, size=fmt_size
)
templates.env.globals.update(
    outcome_class=outcome_class,
    urlencode=urlencode,
    outcome_strip=outcome_strip,
    legend=legend,
    duration_shown=duration_shown,
    duration_units=UNITS[1:],
)


def axis_time(value: str) -> str:
    """A chart axis's short time (month-day hour:minute) in the viewer's zone; the chart says which."""
    parsed = _parse(value)
    return parsed.astimezone(_zone(_VIEWER_TZ.get())).strftime("%m-%d %H:%M") if parsed else ""


class LoginRequired(Exception):
    """A page asked for without a login: ``upkeep.web.app`` answers it with a redirect to /login."""


class AdminsOnly(Exception):
    """An admin's page asked for by someone else: ``upkeep.web.app`` answers it with the 403 page."""

    def __init__(self, principal: Principal, what: str, nav: str | None):
        super().__init__(f"{what} needs the admin role")
        self.principal, self.what, self.nav = principal, what, nav


def page_id(text: str, what: str) -> int:
    """The id in a page's path (``/runs/12``): a number that can exist, else the page's 404."""
    if not (text.isascii() and text.isdigit()) or len(text) > 15:
        raise NotFound(f"no {what} {text[:50]!r}", field=what)
    return int(text)


def require_login(request: Request) -> Principal:
    """Who is signed in (the session cookie or a key), else LoginRequired."""
    principal = authenticate(request)
    if principal is None:
        raise LoginRequired()
    return principal


def require_admin(request: Request, what: str, *, nav: str | None = None) -> Principal:
    """Who is signed in, an admin, else LoginRequired or AdminsOnly (``what`` names the page)."""
    principal = require_login(request)
    if not principal.can("admin"):
        raise AdminsOnly(principal, what, nav)
    return principal


def render(request: Request, name: str, principal: Principal | None, status: int = 200, **context) -> Response:
    """A page's template, its times in the signed-in person's zone and relative to the service clock."""
    context.update(request=request, principal=principal, csrf_token=principal.csrf if principal else "")
    now = _NOW.set(upkeep_of(request).clock.now())
    try:
        with viewer_zone(principal.timezone if principal else None):
            return templates.TemplateResponse(request, name, context, status_code=status)
    finally:
        _NOW.reset(now)


def error_page(
    request: Request, principal: Principal | None, status: int, message: str, *, nav: str | None = None, **context
) -> Response:
    """The error page with ``status``: a missing object (404) or a right the viewer lacks (403)."""
    if nav:
        context["nav"] = nav
    return render(request, "error.html", principal, status=status, message=message, **context)


def listing(fetch: Callable[[], tuple[list[Any], int]], offset: int, **filters: str | None) -> dict[str, Any]:
    """A list page's rows and pager: one page of ``fetch()`` (a filter it refuses is the page's
    ``error``, with no rows), and the filters given, which the pager's links keep."""
    error = None
    try:
        items, total = fetch()
    except UserError as exc:
        items, total, error = [], 0, str(exc)
    query = {k: v for k, v in filters.items() if v}
    return {"items": items, "total": total, "offset": offset, "limit": PAGE_SIZE, "query": query, "error": error}


def wants_fragment(request: Request) -> bool:
    """``X-Fragment: 1``: a live page asks for just its refreshing part."""
    return request.headers.get("x-fragment") == "1"


def upkeep_of(request: Request):
    """The app layer's ``Upkeep`` this server was made with (``upkeep.api.app.create_app``)."""
    return request.app.state.upkeep

"""The admin UI's pages. Every page reads through the same service layer as the API.

Pages need a login (the session cookie from ``/login``, see ``upkeep.api.security``); without one
they redirect to ``/login``. Actions (enable, run, edit, cancel) are fetch calls to ``/api/v1``
with the session cookie and the page's CSRF token, so the UI and the API share one code path and
one permission check. ``X-Fragment: 1`` asks a live page for just its refreshing part.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from upkeep.api.clientaddr import client_address, from_trusted_proxy, peer_address
from upkeep.api.problems import ProblemError
from upkeep.api.redaction import safe
from upkeep.api.security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Principal,
    authenticate,
    csrf_ok,
)
from upkeep.app.pages import task_rows
from upkeep.app.terms import ACTIVE_STATUSES, ALL_STATUSES, OUTCOMES
from upkeep.auth import list_keys, verify_token
from upkeep.clock import format_time, relative, zone
from upkeep.errors import NotFound, UserError
from upkeep.people import accounts
from upkeep.web.charts import (
    KINDS,
    chart_kind,
    duration_chart,
    legend,
    outcome_class,
    outcome_strip,
    runs_per_day_chart,
)
from upkeep.web.forms import UNITS, duration_shown, fields_from_schema

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50


# --- template helpers -----------------------------------------------------------------------


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


# --- auth -----------------------------------------------------------------------------------


class LoginRequired(Exception):
    pass


def page_id(text: str, what: str) -> int:
    """The id in a page's path (``/runs/12``): a number that can exist, else the page's 404."""
    if not (text.isascii() and text.isdigit()) or len(text) > 15:
        raise NotFound(f"no {what} {text[:50]!r}", field=what)
    return int(text)


def _principal(request: Request) -> Principal:
    principal = authenticate(request)
    if principal is None:
        raise LoginRequired()
    return principal


def _render(request: Request, name: str, principal: Principal | None, status: int = 200, **context) -> Response:
    context.update(request=request, principal=principal, csrf_token=principal.csrf if principal else "")
    token = _VIEWER_TZ.set(principal.timezone if principal else None)
    now = _NOW.set(_svc(request).clock.now())
    try:
        return templates.TemplateResponse(request, name, context, status_code=status)
    finally:
        _NOW.reset(now)
        _VIEWER_TZ.reset(token)


def _fragment(request: Request) -> bool:
    return request.headers.get("x-fragment") == "1"


def _svc(request: Request):
    return request.app.state.upkeep


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_form(request: Request, next: str, error: str | None, status: int = 200, **context) -> Response:
    cookie, token = request.app.state.sessions.login_token()
    response = _render(
        request, "login.html", None, status=status, next=_safe_next(next), login_csrf=token, error=error, **context
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        cookie,
        httponly=True,
        samesite="strict",
        max_age=3600,
        path="/login",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/", error: str | None = None) -> Response:
    header = request.app.state.settings.auth.proxy_header
    named = request.headers.get(header, "").strip() if header else ""
    if named:
        return _proxy_sign_in(request, header, named, _safe_next(next))
    return _login_form(request, next, error)


def _proxy_sign_in(request: Request, header: str, named: str, target: str) -> Response:
    """Single sign-on: a trusted reverse proxy authenticated the person and names them in ``header``.
    The same header from anywhere else is a forgery: refused, audited and counted as a failed login."""
    address = client_address(request)
    refused = _throttled(request, address, target)
    if refused is not None:
        return refused
    if not from_trusted_proxy(request):
        peer = peer_address(request)
        _login_failed(request, address, f"{header} header from {peer}, which is not in server.auth.trusted_proxies")
        return _login_form(request, target, "proxy_untrusted", status=403, header=header)
    result = accounts.proxy_sign_in(request.app.state.store, named)
    if not result.ok:
        _login_failed(request, address, f"{header} names {_attempted(named, result.reason)}")
        return _login_form(request, target, "no_account", status=403, header=header)
    value, _csrf = request.app.state.sessions.issue_for_user(result.user)
    detail = f"web UI sign-in through the reverse proxy ({header} from {peer_address(request)})"
    return _signed_in(request, address, target, value, f"user:{result.user['name']}", result.user["name"], detail)


def _attempted(name: str, reason: str) -> str:
    """What the audit log says about a failed sign-in's name: never text that names no account
    (a password typed into the name field must not end up in the log)."""
    return reason if reason == "no such account" else f"account {name!r}: {reason}"


def _throttled(request: Request, address: str, target: str) -> Response | None:
    throttle = request.app.state.login_throttle
    wait = throttle.retry_after(address)
    if not wait:
        return None
    if throttle.refused(address):
        _svc(request).record_audit(
            f"client:{address}", "login_throttled", "session", address, detail=f"refused for {wait} s"
        )
    response = _login_form(request, target, "throttled", status=429, wait=wait)
    response.headers["Retry-After"] = str(wait)
    return response


def _login_failed(request: Request, address: str, why: str) -> None:
    count = request.app.state.login_throttle.failed(address)
    _svc(request).record_audit(
        f"client:{address}", "login_failed", "session", address, detail=f"failed login {count} from {address}: {why}"
    )


def _signed_in(request: Request, address: str, target: str, value: str, actor: str, who: str, detail: str) -> Response:
    request.app.state.login_throttle.succeeded(address)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        value,
        httponly=True,
        samesite="strict",
        max_age=request.app.state.sessions.max_age,
        path="/",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    _svc(request).record_audit(actor, "login", "session", who, detail=detail)
    return response


@router.post("/login")
def login(
    request: Request,
    name: str = Form("", max_length=200),
    password: str = Form("", max_length=1024),
    code: str = Form("", max_length=20),
    token: str = Form("", max_length=500),
    csrf_token: str = Form("", max_length=200),
    next: str = Form("/", max_length=2000),
) -> Response:
    """A person signs in with name, password and (once enrolled) a TOTP code; a machine's key
    signs in too. Failures are audited and throttled per client address (through trusted proxies)."""
    sessions = request.app.state.sessions
    address = client_address(request)
    target = _safe_next(next)
    refused = _throttled(request, address, target)
    if refused is not None:
        return refused
    if not sessions.check_login_token(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        return RedirectResponse(f"/login?next={quote(target)}&error=expired", status_code=303)
    if token.strip():
        key = verify_token(request.app.state.store, token.strip())
        if key is None:
            _login_failed(request, address, "invalid or revoked API key")
            return RedirectResponse(f"/login?next={quote(target)}&error=invalid", status_code=303)
        value, _csrf = sessions.issue(key)
        return _signed_in(request, address, target, value, f"key:{key['name']}", key["name"], "web UI login")
    result = accounts.sign_in(request.app.state.store, name.strip(), password, code)
    if not result.ok:
        _login_failed(request, address, _attempted(name.strip(), result.reason))
        return RedirectResponse(f"/login?next={quote(target)}&error=invalid", status_code=303)
    value, _csrf = sessions.issue_for_user(result.user)
    user = result.user["name"]
    return _signed_in(request, address, target, value, f"user:{user}", user, "web UI login with a password")


@router.post("/logout")
def logout(request: Request, csrf_token: str = Form("", max_length=200)) -> Response:
    principal = authenticate(request)
    if principal is not None and principal.via == "session" and not csrf_ok(principal, csrf_token):
        raise ProblemError(403, "missing or wrong CSRF token", field="csrf_token")
    request.app.state.sessions.end(request.cookies.get(SESSION_COOKIE))  # every copy of the cookie
    if principal is not None:
        _svc(request).record_audit(principal.actor, "logout", "session", principal.name, detail="web UI logout")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- pages ----------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request) -> Response:
    from upkeep.app.alerts import open_alert_count, targets_overview
    from upkeep.app.tasks import drifted as drifted_tasks

    principal = _principal(request)
    data = safe(request.app.state.queries.dashboard(days=7))
    store, now = request.app.state.store, _svc(request).clock.now()
    alerting = {"alerts": open_alert_count(store), "targets": safe(targets_overview(store, now))}
    per_day = runs_per_day_chart(_by_kind(request.app.state.queries.runs_per_day(30)))
    drifted = drifted_tasks(store)
    name = "_dashboard.html" if _fragment(request) else "dashboard.html"
    return _render(request, name, principal, d=data, a=alerting, per_day=per_day, drifted=drifted, nav="dashboard")


@router.get("/tasks", response_class=HTMLResponse)
def tasks_page(
    request: Request,
    enabled: str | None = Query(None, max_length=5),
    type: str | None = Query(None, max_length=200),
    last_status: str | None = Query(None, max_length=20),
    search: str | None = Query(None, max_length=200),
    offset: int = Query(0, ge=0, le=10**9),
) -> Response:
    principal = _principal(request)
    svc = _svc(request)
    filters = {
        "enabled": {"true": True, "false": False}.get(enabled or ""),
        "task_type": type or None,
        "last_status": last_status if last_status in ALL_STATUSES else None,
        "search": search or None,
    }
    error = None
    try:
        items, total = task_rows(request.app.state.store, svc.registry, **filters, limit=PAGE_SIZE, offset=offset)
    except UserError as exc:
        items, total, error = [], 0, str(exc)
    query = {
        k: v for k, v in {"enabled": enabled, "type": type, "last_status": last_status, "search": search}.items() if v
    }
    handlers = {spec.name: spec for spec in svc.registry.all()}
    context = dict(
        recent=request.app.state.queries.recent_outcomes([t["id"] for t in items]),
        tasks=safe(items),
        total=total,
        offset=offset,
        limit=PAGE_SIZE,
        query=query,
        error=error,
        statuses=ALL_STATUSES,
        handlers=handlers,
        nav="tasks",
    )
    name = "_tasks_table.html" if _fragment(request) else "tasks.html"
    return _render(request, name, principal, **context)


def _task_or_404(request: Request, ref: str) -> dict[str, Any]:
    if len(ref) > 200:
        raise NotFound(f"no task {ref[:50]!r}...")
    if ref.isdigit() and (not ref.isascii() or len(ref) > 15):
        raise NotFound(f"no task {ref!r}", field="task")
    return safe(_svc(request).get_task(ref))


@router.get("/tasks/{ref}", response_class=HTMLResponse)
def task_page(request: Request, ref: str) -> Response:
    principal = _principal(request)
    svc = _svc(request)
    try:
        task = _task_or_404(request, ref)
    except NotFound as exc:
        return _render(request, "error.html", principal, status=404, message=str(exc), nav="tasks")
    try:
        spec = svc.registry.get(task["type"])
    except UserError:  # a plug-in handler that is no longer installed: show the task, no form
        handler, fields = (
            {"name": task["type"], "summary": "(handler not installed)", "overridable": [], "destructive": False},
            [],
        )
    else:
        from upkeep.app.terms import load_targets

        handler = spec.describe()
        values = {**spec.defaults(), **task["config"]}
        fields = fields_from_schema(spec.json_schema(), values, inventory=load_targets(svc.store))
    runs, runs_total = svc.list_runs(task=task["id"], limit=20)
    history = request.app.state.queries.task_history(task["id"], limit=40)
    token = _VIEWER_TZ.set(principal.timezone)  # the chart's axis in the viewer's zone
    try:
        chart = duration_chart(history, axis_time)
    finally:
        _VIEWER_TZ.reset(token)
    return _render(
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
    from upkeep.app.tasks import stored, task_yaml

    return task_yaml(safe(stored(request.app.state.store, task["id"])))


@router.get("/runs", response_class=HTMLResponse)
def runs_page(
    request: Request,
    status: str | None = Query(None, max_length=20),
    outcome: str | None = Query(None, max_length=20),
    task: str | None = Query(None, max_length=200),
    offset: int = Query(0, ge=0, le=10**9),
) -> Response:
    principal = _principal(request)
    error = None
    try:
        items, total = _svc(request).list_runs(
            task=task or None,
            status=status if status in ALL_STATUSES else None,
            outcome=outcome if outcome in OUTCOMES else None,
            limit=PAGE_SIZE,
            offset=offset,
        )
    except UserError as exc:
        items, total, error = [], 0, str(exc)
    query = {k: v for k, v in {"status": status, "outcome": outcome, "task": task}.items() if v}
    name = "_runs_table.html" if _fragment(request) else "runs.html"
    return _render(
        request,
        name,
        principal,
        runs=safe(items),
        total=total,
        offset=offset,
        limit=PAGE_SIZE,
        query=query,
        error=error,
        statuses=ALL_STATUSES,
        outcomes=OUTCOMES,
        nav="runs",
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str) -> Response:
    principal = _principal(request)
    try:
        run = safe(_svc(request).get_run(page_id(run_id, "run")))
    except NotFound as exc:
        return _render(request, "error.html", principal, status=404, message=str(exc), nav="runs")
    events = safe(_svc(request).run_events(run["id"], limit=5000))
    approval = None
    if run["status"] == "waiting":
        from upkeep.people.approvals import pending_for_run

        approval = pending_for_run(_svc(request).store, run["id"])
    return _render(
        request,
        "run.html",
        principal,
        run=run,
        events=events,
        active=run["status"] in ACTIVE_STATUSES,
        approval=approval,
        nav="runs",
    )


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    object_type: str | None = Query(None, max_length=50),
    object_id: str | None = Query(None, max_length=200),
    offset: int = Query(0, ge=0, le=10**9),
) -> Response:
    principal = _principal(request)
    items, total = _svc(request).list_audit(
        limit=PAGE_SIZE, offset=offset, object_type=object_type or None, object_id=object_id or None
    )
    query = {k: v for k, v in {"object_type": object_type, "object_id": object_id}.items() if v}
    return _render(
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
    principal = _principal(request)
    handlers = []
    for spec in _svc(request).registry.all():
        info = spec.describe()
        info["fields"] = fields_from_schema(info["config_schema"])
        handlers.append(info)
    return _render(request, "handlers.html", principal, handlers=handlers, nav="handlers")


@router.get("/keys", response_class=HTMLResponse)
def keys_page(request: Request) -> Response:
    principal = _principal(request)
    if not principal.can("admin"):
        return _render(
            request,
            "error.html",
            principal,
            status=403,
            heading="Forbidden",
            message="the key page needs the admin role",
            nav="keys",
        )
    name = "_keys_table.html" if _fragment(request) else "keys.html"
    return _render(request, name, principal, keys=list_keys(request.app.state.store), nav="keys")


def install_web(app: FastAPI) -> None:
    from upkeep.web.alerts import router as alert_pages
    from upkeep.web.heartbeats import router as heartbeat_pages
    from upkeep.web.pages import router as other_pages
    from upkeep.web.people import router as people_pages
    from upkeep.web.task_pages import router as task_pages

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:  # where browsers look when a page names no icon (the API docs, errors)
        return FileResponse(HERE / "static" / "favicon.ico", media_type="image/x-icon")

    app.include_router(task_pages)  # before /tasks/{ref}: /tasks/new is not a task
    app.include_router(router)
    app.include_router(heartbeat_pages)
    app.include_router(people_pages)
    app.include_router(alert_pages)
    app.include_router(other_pages)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

"""Signing in to the admin UI and out: ``/login`` (a person's name, password and TOTP code, or an
API key), single sign-on through a trusted reverse proxy's header, and ``/logout``.

Failed sign-ins are audited and throttled per client address (``upkeep.http.clientaddr``); the
session cookie and the login form's CSRF cookie are ``upkeep.http.security``'s.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from upkeep.app.keys import verify_token
from upkeep.app.people import accounts
from upkeep.http.clientaddr import client_address, from_trusted_proxy, peer_address
from upkeep.http.problems import ProblemError
from upkeep.http.security import LOGIN_CSRF_COOKIE, SESSION_COOKIE, authenticate, csrf_ok
from upkeep.web.render import render, upkeep_of

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_form(request: Request, next: str, error: str | None, status: int = 200, **context) -> Response:
    cookie, token = request.app.state.sessions.login_token()
    response = render(
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
        upkeep_of(request).record_audit(
            f"client:{address}", "login_throttled", "session", address, detail=f"refused for {wait} s"
        )
    response = _login_form(request, target, "throttled", status=429, wait=wait)
    response.headers["Retry-After"] = str(wait)
    return response


def _login_failed(request: Request, address: str, why: str) -> None:
    count = request.app.state.login_throttle.failed(address)
    upkeep_of(request).record_audit(
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
    upkeep_of(request).record_audit(actor, "login", "session", who, detail=detail)
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
        upkeep_of(request).record_audit(principal.actor, "logout", "session", principal.name, detail="web UI logout")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response

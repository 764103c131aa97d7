"""Authentication (API keys), roles, the UI's session cookie and CSRF protection.

Auth is always on. A request authenticates with ``Authorization: Bearer <token>`` (an API key) or,
for the web UI, with the session cookie set by ``POST /login``. Roles are ordered: viewer reads;
operator also runs, cancels, enables and disables; admin also edits tasks and keys.

The session cookie is HttpOnly and SameSite=Strict, signed with a secret kept in
``<data_dir>/session.key`` (mode 600, generated on first start), and names the key it was opened
with, so revoking the key ends the session at once. It also carries a CSRF token: every unsafe
request authenticated by the cookie must send the same token in the ``X-CSRF-Token`` header (the
UI's fetch calls) or the ``csrf_token`` form field (plain form posts). Bearer requests need no
CSRF token: a browser never adds that header on its own.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from upkeep.api.problems import ProblemError
from upkeep.auth import ROLES, role_allows, verify_token
from upkeep.private import PRIVATE, SESSION_KEY_FILE
from upkeep.queries import key_by_id

SESSION_COOKIE = "upkeep_session"
LOGIN_CSRF_COOKIE = "upkeep_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_MAX_AGE = 12 * 3600  # seconds a UI login lasts
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An upkeep API key: `Authorization: Bearer upk_...` (`upkeep keys create`)",
)


@dataclass(frozen=True)
class Principal:
    key_id: int
    name: str
    role: str
    via: str  # "bearer" | "session"
    csrf: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"key:{self.name}"

    def can(self, role: str) -> bool:
        return role_allows(self.role, role)


def load_or_create_secret(data_dir: Path) -> bytes:
    """The session signing secret, created (mode 600) on first start."""
    path = Path(data_dir) / SESSION_KEY_FILE
    PRIVATE.mkdir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    secret = secrets.token_hex(32).encode()
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret + b"\n")
    os.chmod(path, 0o600)
    return secret


class Sessions:
    """Signed session cookies naming a key id, its prefix and a CSRF token."""

    def __init__(self, secret: bytes, max_age: int = SESSION_MAX_AGE):
        self.max_age = max_age
        self._serializer = URLSafeTimedSerializer(secret, salt="upkeep-session")
        self._login_serializer = URLSafeTimedSerializer(secret, salt="upkeep-login")

    def issue(self, key: dict[str, Any]) -> tuple[str, str]:
        csrf = secrets.token_urlsafe(24)
        value = self._serializer.dumps({"k": key["id"], "p": key["prefix"], "c": csrf})
        return value, csrf

    def load(self, value: str | None) -> dict[str, Any] | None:
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=self.max_age)
        except (BadSignature, SignatureExpired):
            return None
        return data if isinstance(data, dict) and {"k", "p", "c"} <= data.keys() else None

    def login_token(self) -> tuple[str, str]:
        """A double-submit token for the login form (no session exists yet)."""
        token = secrets.token_urlsafe(24)
        return self._login_serializer.dumps(token), token

    def check_login_token(self, cookie: str | None, field: str | None) -> bool:
        if not cookie or not field:
            return False
        try:
            token = self._login_serializer.loads(cookie, max_age=3600)
        except (BadSignature, SignatureExpired):
            return False
        return isinstance(token, str) and hmac.compare_digest(token, field)


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401,
        detail,
        hint="send `Authorization: Bearer <API key>`; `upkeep keys create` makes one",
        headers={"WWW-Authenticate": "Bearer"},
    )


def authenticate(request: Request) -> Principal | None:
    """The caller, or None when the request carries no credentials. Invalid credentials raise 401."""
    store = request.app.state.store
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("the Authorization header must be `Bearer <API key>`")
        view = verify_token(store, token.strip())
        if view is None:
            raise _unauthorized("invalid or revoked API key")
        return Principal(key_id=view["id"], name=view["name"], role=view["role"], via="bearer")
    session = request.app.state.sessions.load(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    key = key_by_id(store, int(session["k"]))
    if key is None or key["revoked_at"] is not None or key["prefix"] != session["p"]:
        return None
    return Principal(key_id=key["id"], name=key["name"], role=key["role"], via="session", csrf=session["c"])


def csrf_ok(principal: Principal, supplied: str | None) -> bool:
    return bool(principal.csrf and supplied and hmac.compare_digest(principal.csrf, supplied))


def require(role: str) -> Callable[..., Principal]:
    """A dependency admitting callers whose role is at least ``role``."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def dependency(
        request: Request,
        _credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
    ) -> Principal:
        principal = authenticate(request)
        if principal is None:
            raise _unauthorized("authentication required")
        needs_csrf = principal.via == "session" and request.method not in SAFE_METHODS
        if needs_csrf and not csrf_ok(principal, request.headers.get(CSRF_HEADER)):
            raise ProblemError(
                403,
                "missing or wrong CSRF token",
                hint=f"send the page's token in the {CSRF_HEADER} header",
                field=CSRF_HEADER,
            )
        if not principal.can(role):
            raise ProblemError(
                403,
                f"this needs the {role} role; key {principal.name!r} has role {principal.role}",
                hint="use a key with a higher role (`upkeep keys create --role ...`)",
            )
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


require_viewer = require("viewer")
require_operator = require("operator")
require_admin = require("admin")

"""Authentication (API keys), roles, the UI's session cookie and CSRF protection.

Auth is always on. A request authenticates with ``Authorization: Bearer <token>`` (an API key) or,
for the web UI, with the session cookie set by ``POST /login``. Roles are ordered: viewer reads;
operator also runs, cancels, enables and disables; admin also edits tasks and keys.

The session cookie is HttpOnly and SameSite=Strict, signed with a secret kept in
``<data_dir>/session.key`` (mode 600, generated on first start), and names the key it was opened
with and a session kept in the store: logging out or revoking the key ends the session at once,
for every copy of the cookie. Failed logins are audited and, past ``LOGIN_FAILURES`` from one
client address within ``LOGIN_WINDOW``, refused with 429 and ``Retry-After``. It also carries a CSRF token: every unsafe
request authenticated by the cookie must send the same token in the ``X-CSRF-Token`` header (the
UI's fetch calls) or the ``csrf_token`` form field (plain form posts). Bearer requests need no
CSRF token: a browser never adds that header on its own.

A session belongs to an API key or to a person's account (``upkeep.people.accounts``): people
sign in with name, password and TOTP code, or through a trusted reverse proxy. ``Principal``
says which (``is_person``): a sign-off or an approval needs a person, never a key.
"""

from __future__ import annotations

import hmac
import math
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from upkeep.auth import ROLES, end_session, open_session, role_allows, session_is_open, verify_token
from upkeep.http.problems import ProblemError
from upkeep.private import PRIVATE, SESSION_KEY_FILE
from upkeep.queries import key_by_id

SESSION_COOKIE = "upkeep_session"
LOGIN_CSRF_COOKIE = "upkeep_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_MAX_AGE = 12 * 3600  # seconds a UI login lasts
LOGIN_FAILURES = 10  # failed logins from one client address...
LOGIN_WINDOW = 15 * 60  # ...within this many seconds, then 429 until the oldest one is this old
LOGIN_FAILURES_DOMAIN = "_login_failures"  # records: client address -> [ISO times of failures]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An upkeep API key: `Authorization: Bearer upk_...` (`upkeep keys create`)",
)


@dataclass(frozen=True)
class Principal:
    """The caller: an API key (a machine) or a person's account, with its role."""

    name: str
    role: str
    via: str  # "bearer" | "session"
    csrf: str | None = None
    key_id: int | None = None  # an API key...
    user_id: int | None = None  # ...or a person's account
    timezone: str | None = None  # a person's preference

    @property
    def is_person(self) -> bool:
        return self.user_id is not None

    @property
    def kind(self) -> str:
        return "user" if self.is_person else "key"

    @property
    def actor(self) -> str:
        """How the audit log names this caller: ``user:NAME`` or ``key:NAME``."""
        return f"{self.kind}:{self.name}"

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
    """Signed session cookies naming a key id, its prefix, a server-side session and a CSRF token."""

    def __init__(self, secret: bytes, store, max_age: int = SESSION_MAX_AGE):
        self.max_age = max_age
        self.store = store
        self._serializer = URLSafeTimedSerializer(secret, salt="upkeep-session")
        self._login_serializer = URLSafeTimedSerializer(secret, salt="upkeep-login")

    def issue(self, key: dict[str, Any]) -> tuple[str, str]:
        """A session of an API key (``{"k": id, "p": prefix}``)."""
        return self._issue(key["id"], {"k": key["id"], "p": key["prefix"]})

    def issue_for_user(self, user: dict[str, Any]) -> tuple[str, str]:
        """A session of a person's account (``{"u": id}``)."""
        from upkeep.people.accounts import session_owner

        return self._issue(session_owner(user["id"]), {"u": user["id"]})

    def _issue(self, owner: int | str, who: dict[str, Any]) -> tuple[str, str]:
        csrf = secrets.token_urlsafe(24)
        session_id = open_session(self.store, owner, self.max_age)
        return self._serializer.dumps({**who, "s": session_id, "c": csrf}), csrf

    @staticmethod
    def _owner(data: Any) -> int | str | None:
        if not (isinstance(data, dict) and {"s", "c"} <= data.keys()):
            return None
        if isinstance(data.get("u"), int):
            from upkeep.people.accounts import session_owner

            return session_owner(data["u"])
        if isinstance(data.get("k"), int) and "p" in data:
            return data["k"]
        return None

    def load(self, value: str | None) -> dict[str, Any] | None:
        """The session of a cookie, while it is signed, young enough and open in the store."""
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=self.max_age)
        except (BadSignature, SignatureExpired):
            return None
        owner = self._owner(data)
        if owner is None:
            return None
        return data if session_is_open(self.store, owner, str(data["s"])) else None

    def end(self, value: str | None) -> None:
        """Log out: close the cookie's session in the store."""
        data = self.load(value)
        if data is not None:
            end_session(self.store, self._owner(data), str(data["s"]))

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


class LoginThrottle:
    """Failed logins per client address, kept in the store so every API process sees them: past
    ``limit`` failures within ``window`` seconds, the address waits until the oldest leaves it."""

    def __init__(self, store, limit: int = LOGIN_FAILURES, window: float = LOGIN_WINDOW):
        from upkeep.app.terms import Records

        self.records = Records(store, LOGIN_FAILURES_DOMAIN)
        self.limit, self.window = limit, window

    def _recent(self, value: Any, now: datetime) -> dict[str, Any]:
        value = value or {}
        cutoff = now - timedelta(seconds=self.window)
        failures = [t for t in value.get("failures", []) if datetime.fromisoformat(t) > cutoff]
        return {"failures": failures, "refused": value.get("refused", 0) if failures else 0}

    def retry_after(self, address: str, now: datetime | None = None) -> int | None:
        """Seconds the address must wait before its next attempt, or None."""
        now = now or datetime.now(UTC)
        failures = self._recent(self.records.get(address), now)["failures"]
        if len(failures) < self.limit:
            return None
        oldest = datetime.fromisoformat(failures[-self.limit])
        return max(1, math.ceil(self.window - (now - oldest).total_seconds()))

    def refused(self, address: str, now: datetime | None = None) -> bool:
        """Count a refused attempt; True for the first refusal of this run of failures."""
        now = now or datetime.now(UTC)

        def count(old: Any) -> dict[str, Any]:
            recent = self._recent(old, now)
            return {**recent, "refused": recent["refused"] + 1}

        return self.records.update(address, count)["refused"] == 1

    def failed(self, address: str, now: datetime | None = None) -> int:
        """Count a failed login; how many the address has within the window."""
        now = now or datetime.now(UTC)

        def add(old: Any) -> dict[str, Any]:
            recent = self._recent(old, now)
            return {**recent, "failures": [*recent["failures"], now.isoformat()]}

        return len(self.records.update(address, add)["failures"])

    def succeeded(self, address: str) -> None:
        self.records.delete(address)


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
    if "u" in session:
        from upkeep.people.accounts import session_user

        user = session_user(store, int(session["u"]))  # a disabled account opens nothing
        if user is None:
            return None
        return Principal(
            user_id=user["id"],
            name=user["name"],
            role=user["role"],
            via="session",
            csrf=session["c"],
            timezone=user["timezone"],
        )
    key = key_by_id(store, int(session["k"]))
    if key is None or key["revoked_at"] is not None or key["prefix"] != session["p"]:
        return None
    return Principal(key_id=key["id"], name=key["name"], role=key["role"], via="session", csrf=session["c"])


def csrf_ok(principal: Principal, supplied: str | None) -> bool:
    return bool(principal.csrf and supplied and hmac.compare_digest(principal.csrf, supplied))


def require(role: str, *, person: bool = False) -> Callable[..., Principal]:
    """A dependency admitting callers whose role is at least ``role`` (and, with ``person``, only
    people signed in with their account: a sign-off is never a machine's)."""
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
                f"this needs the {role} role; {principal.kind} {principal.name!r} has role {principal.role}",
                hint="use a key with a higher role (`upkeep keys create --role ...`)"
                if not principal.is_person
                else "an admin can change the account's role",
            )
        if person and not principal.is_person:
            raise ProblemError(
                403,
                f"this needs a person signed in with their account; key {principal.name!r} is a machine",
                hint="sign in to the UI with your name and password (`upkeep users create` makes an account)",
            )
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{'person_' if person else ''}{role}"
    return dependency


require_viewer = require("viewer")
require_operator = require("operator")
require_admin = require("admin")

"""Accounts for people: create, list, disable, reset; sign in with name, password and TOTP code.

A person signs in with their name and password (hashed with argon2id, RFC 9106's recommended
parameters as argon2-cffi sets them), plus a TOTP code once they enrolled one (``totp``), or
through a reverse proxy that authenticated them (``server.auth.proxy_header``). Their UI session
is the same server-side session an API key's is (``upkeep.auth.open_session``), owned by
``user:ID``: disabling the account or resetting its password ends every open session at once.

Roles are the keys' roles (viewer, operator, admin). A person's writes are audited as
``user:NAME``; an account without a password (``password=None``) signs in through the proxy only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from upkeep.auth import ROLES, end_sessions
from upkeep.errors import Conflict, NotFound, UserError
from upkeep.people import totp
from upkeep.store.audit import add_audit
from upkeep.store.db import Store
from upkeep.store.models import User

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,199}$")  # proxies may send e-mail addresses
MIN_PASSWORD, MAX_PASSWORD = 8, 1024
HASHER = PasswordHasher()


def session_owner(user_id: int) -> str:
    """Who a person's UI sessions belong to, beside the API keys' ids (``upkeep.auth``)."""
    return f"user:{user_id}"


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    """A hash to verify against when the name is unknown, so that takes as long as a wrong password."""
    return HASHER.hash("no account has this password")


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def user_view(user: User) -> dict[str, Any]:
    """An account as every adapter shows it: never a hash or a TOTP secret."""
    return {
        "id": user.id,
        "name": user.name,
        "role": user.role,
        "password": user.password_hash is not None,
        "totp": user.totp_secret is not None,
        "timezone": user.timezone or "UTC",
        "created_at": _iso(user.created_at),
        "last_login_at": _iso(user.last_login_at),
        "disabled_at": _iso(user.disabled_at),
    }


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise UserError(
            f"invalid account name {name!r}",
            hint="1-200 letters, digits and . _ @ + -, starting with a letter or digit",
            field="name",
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}", hint=f"one of {', '.join(ROLES)}", field="role")
    return role


def check_password(password: str, name: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserError(f"a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters", field="password")
    if password.casefold() == name.casefold():
        raise UserError("a password must not be the account's name", field="password")
    return password


def check_timezone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(
            f"unknown time zone {name!r}", hint="an IANA name such as Europe/Zagreb or UTC", field="timezone"
        ) from None
    return name


def _find(s, ref: str | int, *, lock: bool = False) -> User:
    text = str(ref)
    query = sa.select(User).where(User.name == text)
    if text.isascii() and text.isdigit() and len(text) < 16:
        query = sa.select(User).where(sa.or_(User.name == text, User.id == int(text)))
    if lock:
        query = query.with_for_update()
    user = s.execute(query).scalars().first()
    if user is None:
        raise NotFound(f"no account {text!r}", hint="`upkeep users list` shows the accounts", field="name")
    return user


# --- administration (the CLI, admins in the API and UI) --------------------------------------------


def create_user(
    store: Store, *, name: str, role: str, password: str | None, actor: str, now: datetime | None = None
) -> dict[str, Any]:
    """A new account; ``password=None`` makes one that signs in only through the reverse proxy."""
    check_name(name)
    check_role(role)
    hashed = HASHER.hash(check_password(password, name)) if password is not None else None
    now = _now(now)
    with store.write() as s:
        if s.execute(sa.select(User.id).where(User.name == name)).first():
            raise Conflict(f"an account named {name!r} exists", hint="choose another name", field="name")
        user = User(name=name, role=role, password_hash=hashed, created_at=now, updated_at=now)
        s.add(user)
        s.flush()
        view = user_view(user)
        after = {"role": role, "password": hashed is not None}
        add_audit(s, ts=now, actor=actor, action="create", object_type="user", object_id=name, after=after)
    return view


def list_users(store: Store) -> list[dict[str, Any]]:
    with store.read() as s:
        return [user_view(u) for u in s.execute(sa.select(User).order_by(User.name)).scalars()]


def get_user(store: Store, ref: str | int) -> dict[str, Any]:
    with store.read() as s:
        return user_view(_find(s, ref))


def set_enabled(store: Store, ref: str | int, enabled: bool, *, actor: str, now: datetime | None = None) -> dict:
    """Disable (every open session of the account ends at once) or enable an account."""
    now = _now(now)
    with store.write() as s:
        user = _find(s, ref, lock=store.is_postgres)
        if (user.disabled_at is None) != enabled:
            user.disabled_at = None if enabled else now
            user.updated_at = now
            add_audit(
                s,
                ts=now,
                actor=actor,
                action="enable" if enabled else "disable",
                object_type="user",
                object_id=user.name,
                before={"disabled": enabled},
                after={"disabled": not enabled},
            )
        view = user_view(user)
    if not enabled:
        end_sessions(store, session_owner(view["id"]))
    return view


def reset_user(
    store: Store,
    ref: str | int,
    *,
    password: str | None,
    remove_totp: bool = False,
    actor: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A new password and/or no second factor (a person who lost theirs); open sessions end."""
    if password is None and not remove_totp:
        raise UserError("nothing to reset", hint="give a new password, or remove the TOTP factor (--totp)")
    now = _now(now)
    with store.write() as s:
        user = _find(s, ref, lock=store.is_postgres)
        changed = {}
        if password is not None:
            user.password_hash = HASHER.hash(check_password(password, user.name))
            changed["password"] = "reset"
        if remove_totp:
            user.totp_secret = user.totp_pending = user.totp_last_step = None
            changed["totp"] = "removed"
        user.updated_at = now
        add_audit(s, ts=now, actor=actor, action="reset", object_type="user", object_id=user.name, after=changed)
        view = user_view(user)
    end_sessions(store, session_owner(view["id"]))
    return view


# --- signing in ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    """The account signed in, or why not (for the audit log: the sign-in page never says which)."""

    user: dict[str, Any] | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.user is not None


def sign_in(store: Store, name: str, password: str, code: str = "", now: datetime | None = None) -> SignIn:
    """Check a name, password and (once enrolled) TOTP code. A code is spent by the sign-in it opens."""
    now = _now(now)
    with store.read() as s:
        user = s.execute(sa.select(User).where(User.name == name)).scalars().first()
        found = None if user is None else (user.id, user.password_hash, user.totp_secret, user.disabled_at)
    if found is None or found[1] is None or found[3] is not None:
        try:
            HASHER.verify(_decoy_hash(), password)
        except VerificationError:
            pass
        reason = "no such account" if found is None else "account disabled" if found[3] else "no password set"
        return SignIn(None, reason)
    user_id, hashed, secret, _disabled = found
    try:
        HASHER.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return SignIn(None, "wrong password")
    step = None
    if secret is not None:
        if not code.strip():
            return SignIn(None, "TOTP code missing")
        step = totp.matching_step(secret, code, now)
        if step is None:
            return SignIn(None, "wrong TOTP code")
    with store.write() as s:
        if step is not None:
            spent = s.execute(
                sa.update(User)
                .where(User.id == user_id, sa.or_(User.totp_last_step.is_(None), User.totp_last_step < step))
                .values(totp_last_step=step)
            )
            if spent.rowcount != 1:
                return SignIn(None, "TOTP code already used")
        user = s.get(User, user_id)
        if user is None or user.disabled_at is not None:
            return SignIn(None, "account disabled")
        if HASHER.check_needs_rehash(user.password_hash or ""):
            user.password_hash = HASHER.hash(password)
        user.last_login_at = now
        return SignIn(user_view(user))


def proxy_sign_in(store: Store, name: str, now: datetime | None = None) -> SignIn:
    """The enabled account a trusted reverse proxy names (it authenticated the person already)."""
    now = _now(now)
    with store.write() as s:
        user = s.execute(sa.select(User).where(User.name == name)).scalars().first()
        if user is None:
            return SignIn(None, "no such account")
        if user.disabled_at is not None:
            return SignIn(None, "account disabled")
        user.last_login_at = now
        return SignIn(user_view(user))


def session_user(store: Store, user_id: int) -> dict[str, Any] | None:
    """The account behind a UI session, while it is enabled (name, role, time zone)."""
    with store.read() as s:
        row = s.execute(
            sa.select(User.id, User.name, User.role, User.timezone).where(
                User.id == user_id, User.disabled_at.is_(None)
            )
        ).first()
    if row is None:
        return None
    return {"id": row.id, "name": row.name, "role": row.role, "timezone": row.timezone or "UTC"}


# --- a person's own settings ------------------------------------------------------------------------


def set_preferences(
    store: Store, user_id: int, *, timezone: str, actor: str, now: datetime | None = None
) -> dict[str, Any]:
    """The person's time zone: times on their pages are shown in it."""
    check_timezone(timezone)
    now = _now(now)
    with store.write() as s:
        user = _find(s, user_id)
        before = user.timezone or "UTC"
        if before != timezone:
            user.timezone = timezone
            user.updated_at = now
            add_audit(
                s,
                ts=now,
                actor=actor,
                action="preferences",
                object_type="user",
                object_id=user.name,
                before={"timezone": before},
                after={"timezone": timezone},
            )
        return user_view(user)


def change_password(
    store: Store, user_id: int, *, current: str, new: str, actor: str, now: datetime | None = None
) -> dict[str, Any]:
    """A person sets a new password, proving the current one."""
    now = _now(now)
    with store.read() as s:
        user = _find(s, user_id)
        name, hashed = user.name, user.password_hash
    try:
        if hashed is None:
            raise VerificationError
        HASHER.verify(hashed, current)
    except (VerificationError, InvalidHashError):
        raise UserError("the current password is wrong", field="current") from None
    new_hash = HASHER.hash(check_password(new, name))
    with store.write() as s:
        user = _find(s, user_id)
        user.password_hash = new_hash
        user.updated_at = now
        add_audit(s, ts=now, actor=actor, action="password", object_type="user", object_id=name)
        return user_view(user)


def start_totp(store: Store, user_id: int, *, actor: str, now: datetime | None = None) -> dict[str, Any]:
    """A new secret waiting for its first code (``confirm_totp``): the URI and QR code to scan."""
    secret = totp.new_secret()
    now = _now(now)
    with store.write() as s:
        user = _find(s, user_id)
        if user.totp_secret is not None:
            raise Conflict("a TOTP factor is enrolled already", hint="remove it first, with a current code")
        user.totp_pending = secret
        user.updated_at = now
        uri = totp.provisioning_uri(secret, user.name)
        add_audit(s, ts=now, actor=actor, action="totp_start", object_type="user", object_id=user.name)
    return {"secret": secret, "uri": uri, "svg": totp.qr_svg(uri)}


def confirm_totp(store: Store, user_id: int, code: str, *, actor: str, now: datetime | None = None) -> dict:
    """Enrolment ends with a code from the app: from now on sign-in asks for one."""
    now = _now(now)
    with store.write() as s:
        user = _find(s, user_id, lock=store.is_postgres)
        if user.totp_pending is None:
            raise UserError("no TOTP enrolment is waiting", hint="start one first", field="code")
        step = totp.matching_step(user.totp_pending, code, now)
        if step is None:
            raise UserError(
                "that code does not match", hint="check the device's clock; codes change every 30 s", field="code"
            )
        user.totp_secret, user.totp_pending, user.totp_last_step = user.totp_pending, None, step
        user.updated_at = now
        add_audit(s, ts=now, actor=actor, action="totp_enrol", object_type="user", object_id=user.name)
        return user_view(user)


def remove_totp(store: Store, user_id: int, code: str, *, actor: str, now: datetime | None = None) -> dict:
    """A person removes their own second factor, with a current code (an admin uses ``reset_user``)."""
    now = _now(now)
    with store.write() as s:
        user = _find(s, user_id, lock=store.is_postgres)
        if user.totp_secret is None:
            raise UserError("no TOTP factor is enrolled", field="code")
        step = totp.matching_step(user.totp_secret, code, now)
        if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
            raise UserError("that code does not match or was used already", field="code")
        user.totp_secret = user.totp_pending = user.totp_last_step = None
        user.updated_at = now
        add_audit(s, ts=now, actor=actor, action="totp_remove", object_type="user", object_id=user.name)
        return user_view(user)


def person_actor(store: Store, name: str, *, role: str) -> str:
    """``user:NAME`` for an enabled account with at least ``role``: whom the local CLI signs for
    (``--as NAME``). A name that is no such account is refused, so the audit log names people."""
    from upkeep.auth import role_allows

    with store.read() as s:
        user = s.execute(sa.select(User).where(User.name == name)).scalars().first()
        if user is None:
            raise NotFound(f"no account {name!r}", hint="`upkeep users create NAME --role operator`", field="as")
        if user.disabled_at is not None:
            raise UserError(f"account {name!r} is disabled", hint="`upkeep users enable NAME`", field="as")
        if not role_allows(user.role, role):
            raise UserError(f"account {name!r} has role {user.role}; this needs {role}", field="as")
        return f"user:{user.name}"

"""API keys: created with a role, shown once, stored as a SHA-256 hash.

Roles are ordered: viewer reads; operator also runs, cancels, enables, disables and silences;
admin also edits tasks and keys. A token looks like ``upk_<prefix>_<secret>``; the prefix finds
the row, the hash proves the secret. Tokens carry 256 bits of randomness, so a fast hash is the
right tool (no password stretching needed).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from upkeep.errors import Conflict, NotFound, UserError
from upkeep.store.db import Store
from upkeep.store.models import ApiKey

ROLES = ("viewer", "operator", "admin")
RANK = {role: i for i, role in enumerate(ROLES)}
LAST_USED_RESOLUTION = timedelta(minutes=1)  # last_used_at is written at most this often
log = logging.getLogger(__name__)
# when this process last tried to record each key's use: a write that failed is not tried again
# on the next request, so a store that refuses writes costs one attempt a minute, not one a request
_last_attempt: dict[tuple[str, int], datetime] = {}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def role_allows(role: str, needed: str) -> bool:
    return RANK.get(role, -1) >= RANK[needed]


def create_key(store: Store, *, name: str, role: str, now: datetime | None = None) -> tuple[dict, str]:
    """Create a key; returns its view and the token (the only time the token is known)."""
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}", hint=f"one of {', '.join(ROLES)}", field="role")
    if not name or len(name) > 200:
        raise UserError("a key needs a name of 1-200 characters", field="name")
    prefix = secrets.token_hex(4)
    token = f"upk_{prefix}_{secrets.token_urlsafe(32)}"
    now = now or datetime.now(UTC)
    with store.write() as s:
        if s.execute(sa.select(ApiKey.id).where(ApiKey.name == name)).first():
            raise Conflict(f"a key named {name!r} exists", hint="revoke it or choose another name", field="name")
        key = ApiKey(name=name, role=role, prefix=prefix, token_hash=hash_token(token), created_at=now)
        s.add(key)
        s.flush()
        return key_view(key), token


def key_view(key: ApiKey) -> dict:
    return {
        "id": key.id,
        "name": key.name,
        "role": key.role,
        "prefix": key.prefix,
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def list_keys(store: Store) -> list[dict]:
    with store.read() as s:
        return [key_view(k) for k in s.execute(sa.select(ApiKey).order_by(ApiKey.id)).scalars()]


SESSIONS_DOMAIN = "_sessions"  # records "<owner>/<session id>" -> {"expires_at"}: the UI's open sessions
# a session's owner is a key id ("12") or a person's account ("user:3", ``upkeep.people.accounts``)


def _sessions(store: Store):
    from upkeep.store.records import Records

    return Records(store, SESSIONS_DOMAIN)


def open_session(store: Store, key_id: int | str, max_age: float, now: datetime | None = None) -> str:
    """A server-side UI session of ``key_id`` (a key's id or a person's ``user:ID``); its id goes
    into the signed cookie. Expired sessions are dropped on the way (there are few)."""
    now = now or datetime.now(UTC)
    records = _sessions(store)
    for name, value in records.items():
        if datetime.fromisoformat(value["expires_at"]) <= now:
            records.delete(name)
    session_id = secrets.token_urlsafe(18)
    records.put(f"{key_id}/{session_id}", {"expires_at": (now + timedelta(seconds=max_age)).isoformat()})
    return session_id


def session_is_open(store: Store, key_id: int | str, session_id: str, now: datetime | None = None) -> bool:
    value = _sessions(store).get(f"{key_id}/{session_id}")
    return value is not None and datetime.fromisoformat(value["expires_at"]) > (now or datetime.now(UTC))


def end_session(store: Store, key_id: int | str, session_id: str) -> None:
    """Log out: the cookie, wherever a copy of it is, opens nothing any more."""
    _sessions(store).delete(f"{key_id}/{session_id}")


def end_sessions(store: Store, owner: int | str) -> int:
    """Every open session of a key or an account ends (revoked, disabled, password reset)."""
    return _sessions(store).delete_prefix(f"{owner}/")


def revoke_key(store: Store, name_or_id: str, now: datetime | None = None) -> dict:
    now = now or datetime.now(UTC)
    with store.write() as s:
        query = sa.select(ApiKey).where(
            sa.or_(ApiKey.name == name_or_id, ApiKey.id == int(name_or_id) if name_or_id.isdigit() else sa.false())
        )
        key = s.execute(query).scalars().first()
        if key is None:
            raise NotFound(f"no key {name_or_id!r}", hint="`upkeep keys list` shows the keys")
        if key.revoked_at is None:
            key.revoked_at = now
        view = key_view(key)
    end_sessions(store, view["id"])  # its UI sessions end with it
    return view


def verify_token(store: Store, token: str, now: datetime | None = None) -> dict | None:
    """The key's view when ``token`` is a valid, unrevoked key; records when it was last used."""
    parts = token.split("_")
    if len(parts) < 3 or parts[0] != "upk":
        return None
    prefix = parts[1]
    digest = hash_token(token)
    now = now or datetime.now(UTC)
    with store.read() as s:
        candidates = s.execute(sa.select(ApiKey).where(ApiKey.prefix == prefix)).scalars().all()
        key = next((k for k in candidates if hmac.compare_digest(k.token_hash, digest)), None)
        if key is None or key.revoked_at is not None:
            return None
        view = key_view(key)
        stale = key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION
    tried = _last_attempt.get((store.url, view["id"]))
    if stale and (tried is None or not timedelta(0) <= now - tried < LAST_USED_RESOLUTION):
        _last_attempt[(store.url, view["id"])] = now
        try:
            with store.write() as s:
                s.execute(sa.update(ApiKey).where(ApiKey.id == view["id"]).values(last_used_at=now))
            view["last_used_at"] = now.isoformat()
        except sa.exc.DBAPIError as exc:
            # best effort: a store that refuses writes (a full disk) must not refuse reads
            log.warning("could not record the use of key %s: %s", view["name"], str(exc.orig or exc).strip())
    return view


def write_admin_key_file(path: Path, token: str) -> None:
    """Keep the first admin token in ``.upkeep/admin.key``, readable by the owner only."""
    from upkeep.private import PRIVATE

    PRIVATE.mkdir(path.parent)
    PRIVATE.write(path, token + "\n")

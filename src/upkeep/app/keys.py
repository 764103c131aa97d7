"""API keys: create (the token is shown once, stored hashed), list, revoke; the same for
``upkeep keys`` and ``/api/v1/keys``.

Audited alike from both, kind ``key`` named by the key's name: ``create`` records the key's name,
role and token prefix (never the token), ``revoke`` when the key was revoked (revoking a revoked
key changes nothing and records nothing). The change and its audit entry commit together;
revoking also ends the key's UI sessions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from upkeep import auth


def list_keys(store) -> list[dict[str, Any]]:
    return auth.list_keys(store)


def verify_token(store, token: str) -> dict[str, Any] | None:
    """The key ``token`` is (and records its use), None when it is no key or a revoked one."""
    return auth.verify_token(store, token)


def first_admin_key(store, key_file: Path) -> str | None:
    """``upkeep init``'s admin key: None when an unrevoked admin key exists, else a new one's token,
    also kept in ``key_file`` (owner only). Not audited: before it exists nobody can sign in."""
    if any(k["role"] == "admin" and not k["revoked_at"] for k in auth.list_keys(store)):
        return None
    _view, token = auth.create_key(store, name="admin", role="admin")
    auth.write_admin_key_file(key_file, token)
    return token


def create_key(svc, *, name: str, role: str, actor: str) -> tuple[dict[str, Any], str]:
    """The new key's view and its token (the only time the token is known)."""
    with svc.store.transaction() as s:
        view, token = auth.create_key(svc.store, name=name, role=role, now=svc.clock.now())
        after = {"name": view["name"], "role": view["role"], "prefix": view["prefix"]}
        svc.audit(s, actor, "create", "key", view["name"], after=after)
    return view, token


def revoke_key(svc, ref: str, *, actor: str) -> dict[str, Any]:
    """Revoke the key named (or numbered) ``ref``: it stops working at once."""
    now = svc.clock.now()
    with svc.store.transaction() as s:
        view = auth.revoke_key(svc.store, ref, now=now)
        if view["revoked_at"] == now.isoformat():  # revoked now, not before
            svc.audit(
                s,
                actor,
                "revoke",
                "key",
                view["name"],
                before={"revoked_at": None},
                after={"revoked_at": view["revoked_at"]},
            )
    return view

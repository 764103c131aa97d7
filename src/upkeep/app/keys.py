"""API keys: create (the token is shown once, stored hashed), list, revoke; the same for
``upkeep keys`` and ``/api/v1/keys``.

Audited alike from both, kind ``key`` named by the key's name: ``create`` records the key's name,
role and token prefix (never the token), ``revoke`` when the key was revoked (revoking a revoked
key changes nothing and records nothing). The change and its audit entry commit together;
revoking also ends the key's UI sessions.
"""

from __future__ import annotations

from typing import Any

from upkeep import auth


def list_keys(store) -> list[dict[str, Any]]:
    return auth.list_keys(store)


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

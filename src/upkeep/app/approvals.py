"""Deciding an approval step, the same for ``upkeep approvals approve|reject`` and
``/api/v1/approvals/{id}/approve|reject``: ``upkeep.people.approvals.decide`` judges the person's
role and records the decision (audited under their name); an approved run is due at once, so the
dispatchers sleeping until their next due run are woken."""

from __future__ import annotations

from typing import Any

from upkeep.engine.wakeup import broadcast
from upkeep.people import approvals


def decide(
    svc,
    approval_id: int,
    *,
    approve: bool,
    actor: str,
    role: str,
    reason: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    view = approvals.decide(
        svc.store,
        approval_id,
        approve=approve,
        actor=actor,
        role=role,
        reason=reason,
        detail=detail,
        now=svc.clock.now(),
    )
    if approve:
        broadcast(svc.store, svc.settings.resolved_data_dir)
    return view

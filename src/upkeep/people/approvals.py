"""Approval steps of procedures: a run waits, without a worker, until a person decides.

``procedure.execute`` reaches an ``approve:`` step and asks (``request``): one row per (run, step),
holding the steps done so far, then the lifecycle parks the run (``waiting``). A person with the
step's role approves (``decide``: the run resumes, in the same transaction, and its handler goes on
at the next step, which gets the run's ``confirm``) or rejects (the run is cancelled with the
reason). ``expire`` (the scheduler's loop) cancels the runs whose approval was not given in time.
Every decision is audited under the person who made it (``user:NAME``); an API key never decides.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from upkeep.auth import role_allows
from upkeep.engine import lifecycle
from upkeep.errors import Conflict, Forbidden, NotFound
from upkeep.store.audit import add_audit
from upkeep.store.db import Store
from upkeep.store.models import WAITING, Approval, Run

PENDING, APPROVED, REJECTED, EXPIRED = "pending", "approved", "rejected", "expired"
STATUSES = (PENDING, APPROVED, REJECTED, EXPIRED)
MAX_REASON = 2000


def _now(now: datetime | None = None) -> datetime:
    return now or datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def view(approval: Approval) -> dict[str, Any]:
    return {
        "id": approval.id,
        "run_id": approval.run_id,
        "task_name": approval.task_name,
        "step": approval.step + 1,
        "step_name": approval.step_name,
        "role": approval.role,
        "message": approval.message,
        "status": approval.status,
        "requested_at": _iso(approval.requested_at),
        "expires_at": _iso(approval.expires_at),
        "decided_by": approval.decided_by,
        "decided_at": _iso(approval.decided_at),
        "reason": approval.reason,
    }


def request(
    store: Store,
    *,
    run_id: int,
    task_name: str | None,
    step: int,
    step_name: str,
    role: str,
    timeout_seconds: float,
    message: str,
    progress: dict[str, Any],
    now: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """The approval of ``step`` of this run, asked for now unless it was already; (view, new)."""
    now = _now(now)
    with store.write() as s:
        found = s.execute(sa.select(Approval).where(Approval.run_id == run_id, Approval.step == step)).scalars()
        existing = found.first()
        if existing is not None:
            return view(existing), False
        approval = Approval(
            run_id=run_id,
            task_name=task_name,
            step=step,
            step_name=step_name[:200],
            role=role,
            message=message,
            progress=progress,
            requested_at=now,
            expires_at=now + timedelta(seconds=timeout_seconds),
            status=PENDING,
        )
        s.add(approval)
        s.flush()
        return view(approval), True


def decisions(store: Store, run_id: int) -> dict[int, dict[str, Any]]:
    """This run's approvals by 0-based step, with the progress each saved."""
    with store.read() as s:
        rows = s.execute(sa.select(Approval).where(Approval.run_id == run_id)).scalars()
        return {a.step: {**view(a), "progress": a.progress} for a in rows}


def list_approvals(store: Store, *, status: str | None = PENDING, limit: int = 200) -> list[dict[str, Any]]:
    """Approvals, newest first; pending ones only while their run still waits."""
    query = sa.select(Approval).order_by(Approval.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Approval.status == status)
    if status == PENDING:
        query = query.join(Run, Run.id == Approval.run_id).where(Run.status == WAITING)
    with store.read() as s:
        return [view(a) for a in s.execute(query).scalars()]


def pending_for_run(store: Store, run_id: int) -> dict[str, Any] | None:
    """The approval this run waits for, if any."""
    with store.read() as s:
        query = sa.select(Approval).where(Approval.run_id == run_id, Approval.status == PENDING)
        approval = s.execute(query).scalars().first()
        return view(approval) if approval else None


def get(store: Store, approval_id: int) -> dict[str, Any]:
    with store.read() as s:
        approval = s.get(Approval, approval_id)
        if approval is None:
            raise NotFound(f"no approval {approval_id}", hint="`upkeep approvals list` shows them", field="id")
        return view(approval)


def decide(
    store: Store,
    approval_id: int,
    *,
    approve: bool,
    actor: str,
    role: str,
    reason: str | None = None,
    detail: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Approve (the run resumes at the next step) or reject (the run is cancelled with the reason).

    ``actor`` is the person (``user:NAME``) and ``role`` their role; the caller has checked that
    they are a person. A decision already made, or a run no longer waiting, is a conflict."""
    now = _now(now)
    with store.write() as s:
        query = sa.select(Approval).where(Approval.id == approval_id)
        if store.is_postgres:
            query = query.with_for_update()
        approval = s.execute(query).scalars().first()
        if approval is None:
            raise NotFound(f"no approval {approval_id}", hint="`upkeep approvals list` shows them", field="id")
        if not role_allows(role, approval.role):
            raise Forbidden(f"approval {approval_id} needs the {approval.role} role; {actor} has {role}", field="role")
        if approval.status != PENDING:
            raise Conflict(f"approval {approval_id} was already {approval.status} by {approval.decided_by}")
        run_status = s.execute(sa.select(Run.status).where(Run.id == approval.run_id)).scalar()
        if run_status != WAITING:
            raise Conflict(f"run {approval.run_id} no longer waits for this approval (it is {run_status})")
        label = f"step {approval.step + 1} ({approval.step_name}) of run {approval.run_id}"
        approval.status = APPROVED if approve else REJECTED
        approval.decided_by, approval.decided_at = actor, now
        approval.reason = (reason or "")[:MAX_REASON] or None
        s.flush()
        if approve:
            lifecycle.resume_in_session(s, approval.run_id, f"{label} approved by {actor}", now)
        else:
            because = f": {approval.reason}" if approval.reason else ""
            lifecycle.cancel_in_session(s, approval.run_id, now, f"{label} rejected by {actor}{because}")
        add_audit(
            s,
            ts=now,
            actor=actor,
            action="approve" if approve else "reject",
            object_type="approval",
            object_id=approval.id,
            before={"status": PENDING},
            after={"status": approval.status, "run_id": approval.run_id, "reason": approval.reason},
            detail=detail,
        )
        return view(approval)


def expire(store: Store, now: datetime | None = None) -> list[int]:
    """Cancel the runs whose pending approval's time ran out; returns the approvals' ids."""
    now = _now(now)
    query = sa.select(Approval).where(Approval.status == PENDING, Approval.expires_at <= now)
    if store.is_postgres:
        query = query.with_for_update(skip_locked=True)
    with store.write() as s:
        expired = list(s.execute(query).scalars())
        for approval in expired:
            approval.status, approval.decided_at = EXPIRED, now
            waited = int((approval.expires_at - approval.requested_at).total_seconds())
            approval.reason = f"not approved within {waited}s"
            label = f"step {approval.step + 1} ({approval.step_name})"
            lifecycle.cancel_in_session(s, approval.run_id, now, f"approval of {label} timed out: {approval.reason}")
            add_audit(
                s,
                ts=now,
                actor="system",
                action="expire",
                object_type="approval",
                object_id=approval.id,
                before={"status": PENDING},
                after={"status": EXPIRED, "run_id": approval.run_id},
            )
        return [a.id for a in expired]

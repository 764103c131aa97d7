"""The audit log's one writer: who did what to which object, before and after (secrets redacted).

Every use case that changes something adds its entry in the same transaction as the change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from upkeep.secrets import redact
from upkeep.store.models import AuditEntry


def add_audit(
    s: Session,
    *,
    ts: datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: Any,
    before: Any = None,
    after: Any = None,
    detail: str | None = None,
) -> None:
    s.add(
        AuditEntry(
            ts=ts,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=str(object_id) if object_id is not None else None,
            before=redact(before) if before is not None else None,
            after=redact(after) if after is not None else None,
            detail=detail,
        )
    )

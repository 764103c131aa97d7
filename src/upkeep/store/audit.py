"""The audit log's one writer: who did what to which object, before and after (secrets redacted).

Every use case that changes something adds its entry in the same transaction as the change: to
its session, or, for a use case written in Core statements (``upkeep run``), on its connection.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from upkeep.secrets import redact
from upkeep.store.run_tables import audit_log

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def add_audit(
    s: Session | Connection,
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
    entry = {
        "ts": ts,
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id) if object_id is not None else None,
        "before": redact(before) if before is not None else None,
        "after": redact(after) if after is not None else None,
        "detail": detail,
    }
    if isinstance(s, Connection):
        s.execute(sa.insert(audit_log).values(**entry))
        return
    from upkeep.store.models import AuditEntry

    s.add(AuditEntry(**entry))

"""``/api/v1/audit``: who changed what, newest first (before/after redacted)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from upkeep.api.deps import get_upkeep
from upkeep.api.schemas import AuditPage
from upkeep.app import Upkeep
from upkeep.app.redaction import safe
from upkeep.http.problems import problem_responses
from upkeep.http.security import Principal, require_viewer

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=AuditPage, responses=problem_responses(401, 403, 422), summary="Audit log")
def list_audit(
    object_type: str | None = Query(None, max_length=50, description="task, run, key, handler"),
    object_id: str | None = Query(None, max_length=200),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10**9),
    _: Principal = Depends(require_viewer),
    svc: Upkeep = Depends(get_upkeep),
) -> dict:
    items, total = svc.list_audit(
        limit=limit, offset=offset, object_type=object_type or None, object_id=object_id or None
    )
    return {"items": safe(items), "total": total, "limit": limit, "offset": offset}

"""``/api/v1/approvals``: the approval steps procedures wait at, and people's decisions on them.

Reading needs a viewer. Approving or rejecting needs a person signed in with their account, whose
role is at least the step's (``approve: {role: admin}``), never an API key; it is audited under
their name.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from upkeep.api.deps import get_upkeep
from upkeep.app import Upkeep
from upkeep.app.approvals import decide
from upkeep.app.people import approvals
from upkeep.http.problems import problem_responses
from upkeep.http.security import Principal, require, require_viewer

router = APIRouter(tags=["approvals"])
require_person = require("viewer", person=True)  # the step's own role is checked against the person's
ApprovalId = Path(ge=1, le=2**53, description="Approval id")


class ApprovalOut(BaseModel):
    id: int
    run_id: int = Field(description="The procedure run that waits")
    task_name: str | None
    step: int = Field(description="The step's 1-based number in the procedure")
    step_name: str
    role: str = Field(description="The least role that may decide")
    message: str
    status: str = Field(description="pending, approved, rejected or expired")
    requested_at: str
    expires_at: str = Field(description="When the run is cancelled if nobody decided")
    decided_by: str | None = Field(description="user:NAME (or empty while pending; system when it expired)")
    decided_at: str | None
    reason: str | None


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=approvals.MAX_REASON, description="Why (kept with the decision)")


@router.get("/approvals", response_model=list[ApprovalOut], responses=problem_responses(401, 403, 422))
def list_approvals(
    status: str | None = Query(approvals.PENDING, pattern="^(pending|approved|rejected|expired)$"),
    _: Principal = Depends(require_viewer),
    svc: Upkeep = Depends(get_upkeep),
) -> list[dict]:
    """Approvals, newest first (by default the pending ones whose run still waits)."""
    return approvals.list_approvals(svc.store, status=status)


def _decision_route(verb: str, approve: bool, summary: str) -> None:
    """``POST /approvals/{id}/<verb>``: a person's decision on a step; the route's name (its
    operation id) is the verb."""

    @router.post(
        f"/approvals/{{approval_id}}/{verb}",
        response_model=ApprovalOut,
        responses=problem_responses(401, 403, 404, 409, 422),
        summary=summary,
        name=verb,
    )
    def decision(
        body: Decision | None = None,
        approval_id: int = ApprovalId,
        principal: Principal = Depends(require_person),
        svc: Upkeep = Depends(get_upkeep),
    ) -> dict:
        reason = body.reason if body else None
        return decide(svc, approval_id, approve=approve, actor=principal.actor, role=principal.role, reason=reason)


_decision_route("approve", True, "Approve: the procedure goes on at its next step (a person)")
_decision_route("reject", False, "Reject: the procedure run is cancelled with the reason (a person)")

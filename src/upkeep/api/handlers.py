"""``/api/v1/handlers``: the handler reference, with each config's JSON schema."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path

from upkeep.api.deps import get_upkeep
from upkeep.api.schemas import HandlerOut
from upkeep.app import Upkeep
from upkeep.http.problems import problem_responses
from upkeep.http.security import Principal, require_viewer

router = APIRouter(prefix="/handlers", tags=["handlers"])


@router.get("", response_model=list[HandlerOut], responses=problem_responses(401, 403), summary="List handlers")
def list_handlers(_: Principal = Depends(require_viewer), svc: Upkeep = Depends(get_upkeep)) -> list:
    return [spec.describe() for spec in svc.registry.all()]


@router.get(
    "/{name}",
    response_model=HandlerOut,
    responses=problem_responses(401, 403, 404, 422),
    summary="One handler (aliases accepted)",
)
def get_handler(
    name: str = Path(max_length=200), _: Principal = Depends(require_viewer), svc: Upkeep = Depends(get_upkeep)
) -> dict:
    from upkeep.errors import NotFound, UserError

    try:
        return svc.registry.get(name).describe()
    except UserError as exc:
        raise NotFound(exc.message, hint=exc.hint, field="name") from None

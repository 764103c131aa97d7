"""``/api/v1/keys`` (admin): list, create (the token is shown once), revoke; ``/api/v1/me``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path

from upkeep.api.deps import get_upkeep
from upkeep.api.schemas import KeyCreate, KeyCreated, KeyOut, Me
from upkeep.app import Upkeep
from upkeep.app import keys as key_cases
from upkeep.errors import Conflict
from upkeep.http.problems import problem_responses
from upkeep.http.security import Principal, require_admin, require_viewer

router = APIRouter(tags=["keys"])


@router.get("/me", response_model=Me, responses=problem_responses(401), summary="The caller: a key or a person")
def me(principal: Principal = Depends(require_viewer)) -> dict:
    return {
        "name": principal.name,
        "role": principal.role,
        "via": principal.via,
        "kind": principal.kind,
        "timezone": principal.timezone,
    }


@router.get("/keys", response_model=list[KeyOut], responses=problem_responses(401, 403), summary="List keys")
def list_keys(_: Principal = Depends(require_admin), svc: Upkeep = Depends(get_upkeep)) -> list:
    return key_cases.list_keys(svc.store)


@router.post(
    "/keys",
    response_model=KeyCreated,
    status_code=201,
    responses=problem_responses(401, 403, 409, 422),
    summary="Create a key (the token is shown once)",
)
def create_key(body: KeyCreate, principal: Principal = Depends(require_admin), svc: Upkeep = Depends(get_upkeep)):
    view, token = key_cases.create_key(svc, name=body.name, role=body.role, actor=principal.actor)
    return {**view, "token": token}


@router.delete(
    "/keys/{ref}",
    response_model=KeyOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="Revoke a key (by id or name)",
)
def revoke_key(
    ref: str = Path(min_length=1, max_length=200),
    principal: Principal = Depends(require_admin),
    svc: Upkeep = Depends(get_upkeep),
) -> dict:
    """Revoking takes effect at once, including UI sessions opened with the key. A key cannot
    revoke itself (so an admin cannot lock everyone out by accident): use another admin key or
    ``upkeep keys revoke``."""
    if not principal.is_person and ref in (principal.name, str(principal.key_id)):
        raise Conflict("a key cannot revoke itself", hint="use another admin key or `upkeep keys revoke`", field="ref")
    if ref.isdigit() and (not ref.isascii() or int(ref) > 2**53):
        from upkeep.errors import NotFound

        raise NotFound(f"no key {ref!r}", hint="GET /api/v1/keys lists them")
    return key_cases.revoke_key(svc, ref, actor=principal.actor)

"""``/api/v1/users`` (admin): people's accounts; ``/api/v1/me/...``: a person's own settings.

Admins create, disable, enable and reset accounts (disabling or resetting ends the person's open
sessions). A person signed in with their account sets their time zone and password and enrols a
TOTP second factor; an API key has none of these (it is a machine), so those routes answer 403.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from upkeep.api.deps import get_upkeep
from upkeep.api.schemas import Role
from upkeep.app import Upkeep
from upkeep.app.people import accounts
from upkeep.errors import Conflict
from upkeep.http.problems import problem_responses
from upkeep.http.security import Principal, require, require_admin

router = APIRouter(tags=["people"])
require_person = require("viewer", person=True)
Ref = Path(min_length=1, max_length=200, description="Account name or id")


class UserOut(BaseModel):
    id: int
    name: str
    role: str
    password: bool = Field(description="The account has a password (else it signs in through the proxy only)")
    totp: bool = Field(description="A TOTP second factor is enrolled")
    timezone: str
    created_at: str
    last_login_at: str | None
    disabled_at: str | None


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: Role = "viewer"
    password: str | None = Field(
        None, min_length=accounts.MIN_PASSWORD, max_length=accounts.MAX_PASSWORD, description="None: proxy only"
    )


class UserReset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str | None = Field(None, min_length=accounts.MIN_PASSWORD, max_length=accounts.MAX_PASSWORD)
    remove_totp: StrictBool = Field(False, description="Remove the TOTP factor (a person who lost their device)")


class Preferences(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(min_length=1, max_length=64, description="IANA time zone, e.g. Europe/Zagreb")


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current: str = Field(min_length=1, max_length=accounts.MAX_PASSWORD)
    new: str = Field(min_length=accounts.MIN_PASSWORD, max_length=accounts.MAX_PASSWORD)


class Code(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=6, max_length=20, description="The 6-digit code the authenticator app shows")


class Enrolment(BaseModel):
    secret: str = Field(description="The base32 secret, for apps that cannot scan")
    uri: str = Field(description="otpauth:// URI")
    svg: str = Field(description="The URI's QR code, an inline SVG")


@router.get("/users", response_model=list[UserOut], responses=problem_responses(401, 403), summary="List accounts")
def list_users(_: Principal = Depends(require_admin), svc: Upkeep = Depends(get_upkeep)) -> list:
    return accounts.list_users(svc.store)


@router.post(
    "/users",
    response_model=UserOut,
    status_code=201,
    responses=problem_responses(401, 403, 409, 422),
    summary="Create an account",
)
def create_user(body: UserCreate, principal: Principal = Depends(require_admin), svc: Upkeep = Depends(get_upkeep)):
    return accounts.create_user(
        svc.store, name=body.name, role=body.role, password=body.password, actor=principal.actor, now=svc.clock.now()
    )


def _not_self(principal: Principal, ref: str, what: str) -> None:
    if principal.is_person and ref in (principal.name, str(principal.user_id)):
        raise Conflict(f"an account cannot {what} itself", hint="ask another admin, or use `upkeep users`", field="ref")


@router.post(
    "/users/{ref}/disable",
    response_model=UserOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="Disable an account (its open sessions end)",
)
def disable_user(ref: str = Ref, principal: Principal = Depends(require_admin), svc: Upkeep = Depends(get_upkeep)):
    _not_self(principal, ref, "disable")
    return accounts.set_enabled(svc.store, ref, False, actor=principal.actor, now=svc.clock.now())


@router.post(
    "/users/{ref}/enable",
    response_model=UserOut,
    responses=problem_responses(401, 403, 404, 422),
    summary="Enable an account",
)
def enable_user(ref: str = Ref, principal: Principal = Depends(require_admin), svc: Upkeep = Depends(get_upkeep)):
    return accounts.set_enabled(svc.store, ref, True, actor=principal.actor, now=svc.clock.now())


@router.post(
    "/users/{ref}/reset",
    response_model=UserOut,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="Set a new password or remove the TOTP factor (open sessions end)",
)
def reset_user(
    body: UserReset, ref: str = Ref, principal: Principal = Depends(require_admin), svc: Upkeep = Depends(get_upkeep)
):
    _not_self(principal, ref, "reset")
    return accounts.reset_user(
        svc.store,
        ref,
        password=body.password,
        remove_totp=body.remove_totp,
        actor=principal.actor,
        now=svc.clock.now(),
    )


@router.patch(
    "/me",
    response_model=UserOut,
    responses=problem_responses(401, 403, 422),
    summary="Set your preferences (a person's account)",
)
def set_preferences(
    body: Preferences, principal: Principal = Depends(require_person), svc: Upkeep = Depends(get_upkeep)
):
    return accounts.set_preferences(
        svc.store, principal.user_id, timezone=body.timezone, actor=principal.actor, now=svc.clock.now()
    )


@router.post(
    "/me/password",
    response_model=UserOut,
    responses=problem_responses(401, 403, 422),
    summary="Change your password",
)
def change_password(
    body: PasswordChange, principal: Principal = Depends(require_person), svc: Upkeep = Depends(get_upkeep)
):
    return accounts.change_password(
        svc.store, principal.user_id, current=body.current, new=body.new, actor=principal.actor, now=svc.clock.now()
    )


@router.post(
    "/me/totp",
    response_model=Enrolment,
    responses=problem_responses(401, 403, 409),
    summary="Start enrolling a TOTP second factor",
)
def start_totp(principal: Principal = Depends(require_person), svc: Upkeep = Depends(get_upkeep)) -> dict:
    """A new secret, shown once with its QR code; it signs nothing in until confirmed with a code."""
    return accounts.start_totp(svc.store, principal.user_id, actor=principal.actor, now=svc.clock.now())


@router.post(
    "/me/totp/confirm",
    response_model=UserOut,
    responses=problem_responses(401, 403, 422),
    summary="Confirm the TOTP enrolment with a code",
)
def confirm_totp(body: Code, principal: Principal = Depends(require_person), svc: Upkeep = Depends(get_upkeep)):
    return accounts.confirm_totp(svc.store, principal.user_id, body.code, actor=principal.actor, now=svc.clock.now())


@router.post(
    "/me/totp/remove",
    response_model=UserOut,
    responses=problem_responses(401, 403, 422),
    summary="Remove your TOTP factor (with a current code)",
)
def remove_totp(body: Code, principal: Principal = Depends(require_person), svc: Upkeep = Depends(get_upkeep)):
    return accounts.remove_totp(svc.store, principal.user_id, body.code, actor=principal.actor, now=svc.clock.now())

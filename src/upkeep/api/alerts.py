"""``/api/v1/alerts``, ``/api/v1/silences``, ``/api/v1/channels`` and ``/api/v1/notifications``:
alerts with their delivery history, acknowledging them, silences (recurring or until a time), the
channels with a test that really sends, and the recent notifications with their delivery status.
Reads need the viewer role; acknowledging, silencing and testing a channel need operator. The use
cases are ``upkeep.app.alerts``'s and ``upkeep.app.notifications``', shared with the CLI and the UI.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from upkeep.app import alerts as use_cases
from upkeep.app import notifications
from upkeep.http.problems import problem_responses
from upkeep.http.security import Principal, require_operator, require_viewer
from upkeep.notify.alerts import STATES

router = APIRouter(tags=["alerts"])
READ = problem_responses(401, 403, 404, 422)
WRITE = problem_responses(401, 403, 404, 409, 422)
MAX_ID = 2**53
Name = Field(None, min_length=1, max_length=300)


class DeliveryOut(BaseModel):
    id: int
    channel: str
    kind: str = Field(description="alert | repeat | escalation | resolution")
    status: str = Field(description="queued | sent | suppressed | failed | dropped")
    title: str
    error: str | None
    at: str | None
    updated_at: str | None


class AlertOut(BaseModel):
    id: int
    subject: str = Field(description="A task's name, heartbeat/NAME or target/KIND.NAME")
    task: str | None = Field(description="The task whose notify section applies")
    kind: str = Field(description="failure | outcome | overdue")
    state: str = Field(description=" | ".join(STATES))
    title: str
    body: str
    run_id: int | None
    note: str = Field(description="e.g. the maintenance that preceded it")
    dependents: list[str] = Field(description="Targets failing because this one is down")
    escalate: list[dict[str, Any]] = Field(description="Its escalation steps")
    escalated: int = Field(description="Escalation steps sent so far")
    opened_at: str | None
    updated_at: str | None
    acknowledged_at: str | None
    acknowledged_by: str | None
    resolved_at: str | None
    deliveries: list[DeliveryOut] = Field(description="Every message, oldest first")


class AlertList(BaseModel):
    items: list[AlertOut]


class SilenceMatch(BaseModel):
    """All given keys must fit an alert."""

    model_config = ConfigDict(extra="forbid")

    task: str | None = Name
    target: str | None = Field(None, min_length=1, max_length=300, description="KIND.NAME, e.g. services.api")
    tier: str | None = Field(None, min_length=1, max_length=20)
    channel: str | None = Name
    heartbeat: str | None = Name


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    match: SilenceMatch
    windows: list[str] = Field(
        default_factory=list, max_length=50, description="Recurring, e.g. 'Sun 02:00-05:00 Europe/Zagreb'"
    )
    until: datetime | None = Field(None, description="When it ends (with a time zone); none: only windows")
    reason: str = Field("", max_length=2000)


class SilenceOut(BaseModel):
    id: int
    match: dict[str, str]
    windows: list[str]
    until: str | None
    reason: str
    managed_by: str = Field(description="file (upkeep.yaml) or api")
    created_by: str
    created_at: str
    ended: bool
    active: bool = Field(description="Holding alerts now (not ended, inside a window if it has any)")


class SilenceList(BaseModel):
    items: list[SilenceOut]


def _now(request: Request):
    return request.app.state.upkeep.clock.now()


def _store(request: Request):
    return request.app.state.store


@router.get("/alerts", response_model=AlertList, responses=READ, summary="List alerts")
def list_alerts(
    request: Request,
    state: str | None = Query(None, pattern="^(" + "|".join(STATES) + ")$"),
    limit: int = Query(100, ge=1, le=1000),
    _: Principal = Depends(require_viewer),
) -> dict:
    """Newest first, each with its delivery history."""
    return {"items": use_cases.list_alerts(_store(request), state=state, limit=limit)}


@router.get("/alerts/{alert_id}", response_model=AlertOut, responses=READ, summary="Read an alert")
def get_alert(request: Request, alert_id: int = Path(ge=1, le=MAX_ID), _: Principal = Depends(require_viewer)) -> dict:
    return use_cases.get_alert(_store(request), alert_id)


@router.post("/alerts/{alert_id}/ack", response_model=AlertOut, responses=WRITE, summary="Acknowledge an alert")
def acknowledge(
    request: Request, alert_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(require_operator)
) -> dict:
    """Its escalation and reminders stop; it resolves when the problem ends (409 when it has)."""
    return use_cases.acknowledge(_store(request), alert_id, actor=principal.actor, now=_now(request))


@router.get("/silences", response_model=SilenceList, responses=READ, summary="List silences")
def list_silences(
    request: Request,
    include_ended: bool = Query(False, alias="all", description="Include silences that ended"),
    _: Principal = Depends(require_viewer),
) -> dict:
    return {"items": use_cases.list_silences(_store(request), include_ended=include_ended, now=_now(request))}


@router.post("/silences", response_model=SilenceOut, status_code=201, responses=WRITE, summary="Silence alerts")
def create_silence(request: Request, body: SilenceIn, principal: Principal = Depends(require_operator)) -> dict:
    """Hold the alerts ``match`` fits: during ``windows``, until ``until``, or both."""
    return use_cases.create_silence(
        _store(request),
        match=body.match.model_dump(exclude_none=True),
        windows=body.windows,
        until=body.until,
        reason=body.reason,
        actor=principal.actor,
        now=_now(request),
    )


@router.post("/silences/{silence_id}/expire", response_model=SilenceOut, responses=WRITE, summary="End a silence")
def expire_silence(
    request: Request, silence_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(require_operator)
) -> dict:
    """Ends it now; one from upkeep.yaml ends when it leaves the file (409)."""
    return use_cases.expire_silence(_store(request), silence_id, actor=principal.actor, now=_now(request))


class ChannelOut(BaseModel):
    name: str
    url: str = Field(description="As written in upkeep.yaml: ${env:..} references kept, passwords hidden")
    default: bool
    timeout: float


class ChannelList(BaseModel):
    items: list[ChannelOut]


class ChannelTestOut(BaseModel):
    channel: str
    url: str
    status: str = Field(description="sent | failed")
    error: str | None = Field(description="What the channel answered when it did not take the message")
    at: str


class NotificationOut(BaseModel):
    at: str | None
    channel: str | None
    kind: str = Field(description="alert | repeat | escalation | resolution | test | ...")
    title: str
    status: str = Field(description="queued | retrying | sent | suppressed | failed | dropped")
    label: str = Field(description="queued | pending retry | delivered | suppressed | failed | dropped")
    error: str | None
    attempts: int | None = Field(description="Attempts so far of a message still waiting")
    next_attempt_at: str | None
    run_id: int | None
    alert_id: int | None


class NotificationList(BaseModel):
    items: list[NotificationOut]


@router.get("/channels", response_model=ChannelList, responses=READ, summary="List notification channels")
def list_channels(request: Request, _: Principal = Depends(require_viewer)) -> dict:
    return {"items": notifications.list_channels(_store(request))}


@router.post(
    "/channels/{channel}/test", response_model=ChannelTestOut, responses=WRITE, summary="Send a test notification"
)
def test_channel(
    request: Request,
    channel: str = Path(min_length=1, max_length=300),
    principal: Principal = Depends(require_operator),
) -> dict:
    """Sends a test message through the channel now: 200 with ``status`` sent, or failed and the
    channel's error (a failed test is an answer, not an error of the call); 404 for no such channel."""
    return notifications.send_channel_test(_store(request), channel, actor=principal.actor, now=_now(request))


@router.get("/notifications", response_model=NotificationList, responses=READ, summary="Recent notifications")
def recent_notifications(
    request: Request, limit: int = Query(50, ge=1, le=200), _: Principal = Depends(require_viewer)
) -> dict:
    """Messages waiting for a channel (queued, or pending a retry with their last error), then the
    latest sent, suppressed, failed and dropped ones, newest first."""
    return {"items": notifications.recent_notifications(_store(request), limit)}

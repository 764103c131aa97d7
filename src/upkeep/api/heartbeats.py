"""``/api/v1/heartbeats``: monitors of jobs upkeep does not run (see ``upkeep.heartbeats``).

Reads need the viewer role; pause and resume need operator; create, edit and delete need admin.
A monitor's ``ping_url`` holds its token: only admins see it (others get ``null``), and only
admins read the count of pings to unknown tokens (``GET /api/v1/heartbeat-pings/unknown``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from upkeep.app.heartbeats import DEFAULT_GRACE, NAME_PATTERN, STATUSES, monitors
from upkeep.app.terms import NotifySpec
from upkeep.http.problems import ProblemError, problem_responses
from upkeep.http.security import Principal, require_admin, require_operator, require_viewer

router = APIRouter(tags=["heartbeats"])
READ = problem_responses(401, 403, 404, 422)
WRITE = problem_responses(401, 403, 404, 409, 422)
MAX_ID = 2**53


class HeartbeatIn(BaseModel):
    """A heartbeat monitor, as in upkeep.yaml's ``heartbeats:``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=NAME_PATTERN)
    description: str = ""
    schedule: str = Field(min_length=1, max_length=200, description="cron (read in `timezone`) or @every DURATION")
    timezone: str = Field("UTC", max_length=64, description="IANA time zone of a cron schedule")
    grace: str = Field(DEFAULT_GRACE, max_length=50, description="How late a ping may be, e.g. 30m")
    timeout: str | None = Field(None, max_length=50, description="How long after /start the end may come")
    notify: NotifySpec = Field(default_factory=NotifySpec)


class HeartbeatPatch(BaseModel):
    """A partial update: the fields given replace the stored ones (the token never changes)."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    schedule: str | None = Field(None, min_length=1, max_length=200)
    timezone: str | None = Field(None, max_length=64)
    grace: str | None = Field(None, max_length=50)
    timeout: str | None = Field(None, max_length=50)
    notify: NotifySpec | None = None


class HeartbeatOut(BaseModel):
    id: int
    name: str
    description: str
    schedule: str
    timezone: str
    schedule_text: str = Field(description="The schedule in words")
    grace: str
    timeout: str | None
    notify: dict[str, Any]
    paused: bool
    managed_by: str = Field(description="file (upkeep.yaml) or api")
    status: str = Field(description=" | ".join(STATUSES))
    status_reason: str
    expected_at: str | None = Field(description="When the next ping is due")
    overdue_at: str | None = Field(description="When a missing ping makes the monitor overdue (due + grace)")
    started_at: str | None = Field(description="An open /start, if any")
    last_ping_at: str | None
    last_ping_kind: str | None
    last_exit_status: int | None
    last_success_at: str | None
    last_failure_at: str | None
    ping_count: int
    created_at: str | None
    updated_at: str | None
    ping_url: str | None = Field(description="Holds the token: shown to admins only")


class PingOut(BaseModel):
    id: int
    received_at: str | None
    kind: str = Field(description="success | fail | start | timeout (a /start that never ended)")
    exit_status: int | None
    method: str
    source: str | None = Field(description="The client's address")
    user_agent: str
    body: str = Field(description="The first 10,000 bytes of a POST body")
    body_size: int


class HeartbeatDetail(HeartbeatOut):
    pings: list[PingOut] = Field(default_factory=list, description="The latest pings, newest first")


class HeartbeatList(BaseModel):
    items: list[HeartbeatOut]
    total: int


class PingPage(BaseModel):
    items: list[PingOut]
    total: int
    limit: int
    offset: int


class UnknownPings(BaseModel):
    count: int = Field(description="Pings to tokens no monitor holds, since the store was created")
    last_at: str | None
    recent: list[dict[str, Any]] = Field(description="The latest: time, token prefix, source address")


def monitor_ref(
    ref: str = Path(description="Monitor id or name", min_length=1, max_length=200, pattern=NAME_PATTERN),
) -> str:
    if ref.isdigit() and len(ref) > 15 and int(ref) > MAX_ID:
        raise ProblemError(404, f"no heartbeat monitor {ref!r}", field="heartbeat")
    return ref


def _now(request: Request):
    return request.app.state.upkeep.clock.now()


def _store(request: Request):
    return request.app.state.store


def _detail(request: Request, ref: str | int, principal: Principal) -> dict[str, Any]:
    return monitors.get_heartbeat(
        _store(request),
        ref,
        _now(request),
        settings=request.app.state.settings,
        with_url=principal.can("admin"),
        pings=20,
    )


@router.get("/heartbeats", response_model=HeartbeatList, responses=READ, summary="List heartbeat monitors")
def list_heartbeats(
    request: Request,
    status: str | None = Query(None, pattern="^(" + "|".join(STATUSES) + ")$"),
    search: str | None = Query(None, max_length=200, description="Part of the name"),
    _: Principal = Depends(require_viewer),
) -> dict:
    items = monitors.list_heartbeats(_store(request), _now(request), status=status, search=search or None)
    return {"items": items, "total": len(items)}


@router.post("/heartbeats", response_model=HeartbeatDetail, status_code=201, responses=WRITE, summary="Create")
def create_heartbeat(request: Request, body: HeartbeatIn, principal: Principal = Depends(require_admin)) -> dict:
    view = monitors.create_heartbeat(
        _store(request), body.model_dump(mode="json"), actor=principal.actor, now=_now(request)
    )
    return _detail(request, view["id"], principal)


@router.get("/heartbeats/{ref}", response_model=HeartbeatDetail, responses=READ, summary="Read a monitor")
def get_heartbeat(
    request: Request, ref: str = Depends(monitor_ref), principal: Principal = Depends(require_viewer)
) -> dict:
    return _detail(request, ref, principal)


@router.patch("/heartbeats/{ref}", response_model=HeartbeatDetail, responses=WRITE, summary="Edit a monitor")
def patch_heartbeat(
    request: Request,
    body: HeartbeatPatch,
    ref: str = Depends(monitor_ref),
    principal: Principal = Depends(require_admin),
) -> dict:
    changes = body.model_dump(mode="json", exclude_unset=True)
    view = monitors.update_heartbeat(_store(request), ref, changes, actor=principal.actor, now=_now(request))
    return _detail(request, view["id"], principal)


@router.delete(
    "/heartbeats/{ref}", status_code=204, response_class=Response, responses=WRITE, summary="Delete a monitor"
)
def delete_heartbeat(
    request: Request, ref: str = Depends(monitor_ref), principal: Principal = Depends(require_admin)
) -> Response:
    monitors.delete_heartbeat(_store(request), ref, actor=principal.actor, now=_now(request))
    return Response(status_code=204)


@router.post("/heartbeats/{ref}/pause", response_model=HeartbeatDetail, responses=WRITE, summary="Pause")
def pause(request: Request, ref: str = Depends(monitor_ref), principal: Principal = Depends(require_operator)):
    """Pings are still recorded; nothing alerts until the monitor is resumed."""
    view = monitors.set_paused(_store(request), ref, True, actor=principal.actor, now=_now(request))
    return _detail(request, view["id"], principal)


@router.post("/heartbeats/{ref}/resume", response_model=HeartbeatDetail, responses=WRITE, summary="Resume")
def resume(request: Request, ref: str = Depends(monitor_ref), principal: Principal = Depends(require_operator)):
    """The next ping is expected from now on, by the schedule."""
    view = monitors.set_paused(_store(request), ref, False, actor=principal.actor, now=_now(request))
    return _detail(request, view["id"], principal)


@router.get("/heartbeats/{ref}/pings", response_model=PingPage, responses=READ, summary="A monitor's pings")
def list_pings(
    request: Request,
    ref: str = Depends(monitor_ref),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10**9),
    _: Principal = Depends(require_viewer),
) -> dict:
    items, total = monitors.list_pings(_store(request), ref, limit=limit, offset=offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/heartbeat-pings/unknown", response_model=UnknownPings, responses=READ, summary="Pings to unknown tokens")
def unknown_pings(request: Request, _: Principal = Depends(require_admin)) -> dict:
    """A crontab line with a mistyped or deleted monitor's token shows up here."""
    return request.app.state.pings.unknown.summary(_now(request))

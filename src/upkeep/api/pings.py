"""``/ping/{token}``: where jobs upkeep does not run report in, Healthchecks-style, with no API key.

``GET`` or ``POST`` ``/ping/{token}`` (success), ``/ping/{token}/start``, ``/ping/{token}/fail``,
``/ping/{token}/{exit_status}`` (0 success, 1-255 failure). A POST body is kept (the first
``BODY_LIMIT`` bytes) with the source address and user agent. Every token, held by a monitor or
not, answers ``200 OK`` with the same body, so the endpoint tells nobody which tokens exist; pings
to unknown tokens are counted for admins. Each token may send ``ping_rate_limit`` pings
(``200/minute`` by default); past that it gets ``429`` with ``Retry-After``, whether or not a
monitor holds it, and other tokens are not affected.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, FastAPI, Path, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from upkeep.app.heartbeats import BODY_LIMIT, Ping, UnknownPings, record_ping
from upkeep.app.terms import Store
from upkeep.http.problems import problem_responses
from upkeep.ratelimit import KeyedRateLimiter

log = logging.getLogger(__name__)

router = APIRouter(prefix="/ping", tags=["pings"])
OK_BODY = "OK\n"
TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Received (the same answer for every token)", **TEXT},
    429: {"description": "This token sent too many pings; retry after `Retry-After` seconds", **TEXT},
    **problem_responses(422),  # a path no ping has: a token over 200 characters, an exit status over 255
}
Token = Path(min_length=1, max_length=200, description="The monitor's token (`upkeep heartbeats show NAME`)")


class PingReceiver:
    """What the ping routes share: the store, the per-token rate limit and the unknown-token counter."""

    def __init__(self, store: Store, rate: str, clock: Any):
        self.store = store
        self.limiter = KeyedRateLimiter(rate, namespace="ping")
        self.unknown = UnknownPings(store)
        self.clock = clock

    async def receive(self, request: Request, token: str, kind: str, exit_status: int | None = None):
        verdict = self.limiter.hit(token)
        if not verdict.allowed:
            return PlainTextResponse(
                "rate limited\n", status_code=429, headers={"Retry-After": str(verdict.retry_after)}
            )
        body, size = await _read_body(request)
        source = request.client.host if request.client else None
        ping = Ping(
            kind,
            exit_status=exit_status,
            method=request.method,
            source=source,
            user_agent=request.headers.get("user-agent", ""),
            body=body,
            body_size=size,
        )
        now = self.clock.now()
        if not await run_in_threadpool(record_ping, self.store, token, ping, now):
            try:
                await run_in_threadpool(self.unknown.note, token, source, now)
            except Exception:  # a count is not worth failing a ping over
                log.warning("could not record the count of pings to unknown tokens", exc_info=True)
        return PlainTextResponse(OK_BODY)


async def _read_body(request: Request) -> tuple[bytes, int]:
    """The first BODY_LIMIT bytes of the body and its size (the rest is read and dropped)."""
    if request.method != "POST":
        return b"", 0
    kept, size = bytearray(), 0
    async for chunk in request.stream():
        size += len(chunk)
        if len(kept) < BODY_LIMIT:
            kept += chunk[: BODY_LIMIT - len(kept)]
    return bytes(kept), size


def _receiver(request: Request) -> PingReceiver:
    return request.app.state.pings


async def ping_success(request: Request, token: str = Token):
    return await _receiver(request).receive(request, token, "success")


async def ping_start(request: Request, token: str = Token):
    """The job started: it must end (a success or failure ping) within the monitor's timeout."""
    return await _receiver(request).receive(request, token, "start")


async def ping_fail(request: Request, token: str = Token):
    return await _receiver(request).receive(request, token, "fail")


async def ping_exit_status(
    request: Request,
    token: str = Token,
    exit_status: int = Path(ge=0, le=255, description="The job's exit status: 0 is a success, 1-255 a failure"),
):
    return await _receiver(request).receive(request, token, "success" if exit_status == 0 else "fail", exit_status)


ROUTES = [
    ("/{token}", ping_success, "Report a success"),
    ("/{token}/start", ping_start, "Report a start"),
    ("/{token}/fail", ping_fail, "Report a failure"),
    ("/{token}/{exit_status}", ping_exit_status, "Report an exit status"),
]
for _path, _endpoint, _summary in ROUTES:
    for _method in ("GET", "POST"):  # one operation each: curl -fsS URL, or POST a body with the output
        router.add_api_route(
            _path,
            _endpoint,
            methods=[_method],
            response_class=PlainTextResponse,
            responses=RESPONSES,
            summary=_summary,
            operation_id=f"{_endpoint.__name__}_{_method.lower()}",
        )


def install(app: FastAPI, store: Store, settings: Any, clock: Any) -> None:
    app.state.pings = PingReceiver(store, settings.ping_rate_limit, clock)
    app.include_router(router)

"""``GET /api/v1/runs/{id}/events/stream``: a run's log and state as server-sent events, live.

Messages:
- ``event: log`` (``id:`` = the event's sequence number) with the event as JSON;
- ``event: run`` with the run (status, outcome, progress...) whenever it changes;
- ``event: end`` once the run is terminal and every event has been sent; the stream then closes.

Workers write events to the store from other processes, so the stream polls the store every
``POLL_SECONDS`` (a primary-key lookup, plus an indexed range read when there is something new);
an event reaches the client within about one poll interval of being committed. A reconnecting
EventSource sends ``Last-Event-ID`` and resumes after it; ``?after=SEQ`` does the same by hand.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from upkeep.api.deps import get_upkeep
from upkeep.api.runs import RunId
from upkeep.app import Upkeep
from upkeep.app.redaction import safe
from upkeep.app.terms import TERMINAL_STATUSES
from upkeep.http.problems import problem_responses
from upkeep.http.security import Principal, require_viewer

router = APIRouter(tags=["runs"])

POLL_SECONDS = 0.05
KEEPALIVE_SECONDS = 15.0
BATCH = 500
STATE_KEYS = ("status", "outcome", "progress", "progress_message", "cancel_requested", "summary", "error")


def _message(event: str, data: object, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


async def run_stream(svc: Upkeep, run_id: int, after: int, request: Request | None = None) -> AsyncIterator[str]:
    seq = after
    last_state: tuple | None = None
    last_sent = time.monotonic()
    yield "retry: 1000\n\n"
    while True:
        if request is not None and await request.is_disconnected():
            return
        run = await run_in_threadpool(svc.get_run, run_id)
        events = await run_in_threadpool(svc.run_events, run_id, after=seq, limit=BATCH)
        for event in events:
            yield _message("log", safe(event), event["seq"])
            seq = event["seq"]
            last_sent = time.monotonic()
        state = tuple(run.get(k) for k in STATE_KEYS)
        if state != last_state:
            yield _message("run", safe(run))
            last_state = state
            last_sent = time.monotonic()
        if run["status"] in TERMINAL_STATUSES and len(events) < BATCH:
            yield _message("end", {"status": run["status"], "outcome": run["outcome"], "last_seq": seq})
            return
        if time.monotonic() - last_sent > KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        if len(events) < BATCH:
            await asyncio.sleep(POLL_SECONDS)


@router.get(
    "/runs/{run_id}/events/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-sent events (log, run, end)",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **problem_responses(401, 403, 404, 422),
    },
    summary="Stream a run's log live (server-sent events)",
)
async def stream_events(
    request: Request,
    run_id: int = RunId,
    after: int = Query(0, ge=0, le=2**31, description="Resume after this sequence number"),
    _: Principal = Depends(require_viewer),
    svc: Upkeep = Depends(get_upkeep),
) -> StreamingResponse:
    last_id = request.headers.get("last-event-id", "")
    if last_id.isascii() and last_id.isdigit():
        after = max(after, min(int(last_id), 2**31))
    await run_in_threadpool(svc.get_run, run_id)  # 404 before the stream starts
    return StreamingResponse(
        run_stream(svc, run_id, after, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

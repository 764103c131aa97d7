"""An API's request log written by structlog's JSON renderer: ``python structlog_api.py OUT LINES [SPAN_HOURS]``.

What a FastAPI/Django app configured the way structlog's docs show writes: ``event``, ``level``
(lower case), an ISO ``timestamp`` in UTC, and the request as top-level keys (``method``, ``path``
with ids and a query string, ``status``, ``duration_ms``); failed requests at error with the
exception's traceback, and some lines that are no request. With SPAN_HOURS the records are spread
over the last SPAN_HOURS hours (structlog's TimeStamper reads the clock, so the clock is stepped).
"""

from __future__ import annotations

import random
import sys
import time
from unittest import mock

import structlog


def main(out: str, lines: int, span_hours: float = 0.0, seed: int = 7) -> None:
    rnd = random.Random(seed)
    start = time.time() - span_hours * 3600
    with open(out, "w") as fh:
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
            logger_factory=structlog.WriteLoggerFactory(file=fh),
            cache_logger_on_first_use=True,
        )
        log = structlog.get_logger()
        for i in range(lines):
            if not span_hours:
                write_one(log, rnd, i)
                continue
            with mock.patch("time.time", return_value=start + i * span_hours * 3600 / lines):
                write_one(log, rnd, i)


def write_one(log, rnd: random.Random, i: int) -> None:
    r = rnd.random()
    if r < 0.02:
        log.warning("slow query", table="messages", ms=rnd.randint(500, 3000))
        return
    if r < 0.03:
        try:
            raise ConnectionResetError(f"database connection reset after {rnd.randint(1, 900)} ms")
        except ConnectionResetError:
            log.exception("database error")
        return
    s = rnd.random()
    status = rnd.choice([500, 502, 503]) if s < 0.02 else rnd.choice([400, 404, 429]) if s < 0.07 else 200
    path = rnd.choice(["/api/chat", f"/api/users/{rnd.randint(1, 5000)}", "/api/search?q=refund", "/api/health"])
    fields = {"method": rnd.choice(["GET", "POST"]), "path": path, "status": status}
    fields["duration_ms"] = round(rnd.expovariate(1 / 80), 3)
    if status >= 500:
        log.error("request failed", **fields, error=f"upstream timeout after {rnd.randint(1, 999)} ms")
    else:
        log.info("request completed", **fields, request_id=f"{i:08x}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)

"""Healthchecks-style pings: ``ping_url`` of a task is called when its runs start and end.

- start: ``GET {ping_url}/start``
- success: ``POST {ping_url}`` (body: the run's summary) for a completed run with outcome ok/warning
- failure: ``POST {ping_url}/fail`` (body: the error or summary) for the final failed/timed-out
  attempt, a cancelled run, or a completed run with outcome critical

An attempt that fails and is retried sends no end ping: the retry's ``/start`` follows, and the
outside monitor sees a failure only when upkeep gives up. The alerter sends pings from the
scheduler process by observing runs in the store, so they work whichever host ran the run, and an
outside monitor notices when upkeep itself stops (no pings at all).

The URL may hold ``${env:NAME}`` references (resolved at send time). Each ping has a short
timeout (``PING_TIMEOUT``); a failed ping is logged (URL password hidden) and not retried.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from upkeep.secrets import redact_url_password, resolve, scrub

log = logging.getLogger(__name__)

PING_TIMEOUT = 5.0  # seconds per ping
MAX_BODY = 10_000  # bytes of summary/error sent with an end ping


@dataclass(frozen=True)
class Ping:
    url: str  # the task's ping_url template (references unresolved)
    kind: str  # start | success | fail
    run_id: int
    body: str = ""

    @property
    def target(self) -> str:
        base = self.url.rstrip("/")
        return {"start": f"{base}/start", "success": base, "fail": f"{base}/fail"}[self.kind]


def end_kind(status: str, outcome: str | None) -> str | None:
    """success | fail for a run that ended, None for a skipped run."""
    if status == "completed":
        return "fail" if outcome == "critical" else "success"
    if status in ("failed", "timed_out", "cancelled"):
        return "fail"
    return None


def send_ping(ping: Ping, client: httpx.Client | None = None) -> bool:
    """Send one ping; True when the server answered 2xx. Never raises."""
    secrets: list[str] = []
    try:
        url = resolve(ping.target, collected=secrets)
    except Exception as exc:
        log.warning("ping of run %s not sent: %s", ping.run_id, exc)
        return False
    own = client is None
    client = client or httpx.Client(timeout=PING_TIMEOUT, follow_redirects=True)
    try:
        if ping.kind == "start":
            response = client.get(url)
        else:
            response = client.post(url, content=scrub(ping.body, secrets).encode()[:MAX_BODY])
        if response.status_code >= 300:
            log.warning(
                "ping %s of run %s answered HTTP %s",
                redact_url_password(ping.target),
                ping.run_id,
                response.status_code,
            )
            return False
        return True
    except httpx.HTTPError as exc:
        log.warning(
            "ping %s of run %s failed: %s",
            redact_url_password(ping.target),
            ping.run_id,
            scrub(str(exc), secrets),
        )
        return False
    finally:
        if own:
            client.close()


def send_pings(pings: list[Ping], *, workers: int = 4) -> list[bool]:
    """Send pings in the order given for each ping URL, different URLs in parallel; returns each
    ping's success. One URL is one check on the monitor's side: a retry's ``/start`` arriving
    before the failed attempt's ``/fail``, or after it, means a different state there."""
    if not pings:
        return []
    by_url: dict[str, list[int]] = {}
    for index, ping in enumerate(pings):
        by_url.setdefault(ping.url, []).append(index)
    results = [False] * len(pings)
    with httpx.Client(timeout=PING_TIMEOUT, follow_redirects=True) as client:

        def send_in_order(indexes: list[int]) -> None:
            for i in indexes:
                results[i] = send_ping(pings[i], client)

        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(by_url)))) as pool:
            list(pool.map(send_in_order, by_url.values()))
    return results

"""Keyed rate limits for unauthenticated endpoints (heartbeat pings; login attempts can share it).

A limit is written as ``limits`` parses it: ``"200/minute"``, ``"10 per second"``, ``"5/10 seconds"``.
``KeyedRateLimiter.hit(key)`` counts one request for ``key`` and says whether it is allowed; the
window moves (the last N seconds at any moment, not calendar minutes), so a burst cannot double
up across a window boundary. Counts live in this process's memory: each API process limits on
its own, and a restart forgets them, which is what a limit against floods needs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse, storage, strategies

from upkeep.errors import ConfigError


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int  # seconds until a refused key may try again (0 when allowed)


class KeyedRateLimiter:
    """At most ``rate`` requests per key; ``namespace`` keeps two limiters' keys apart."""

    def __init__(self, rate: str, *, namespace: str):
        try:
            self.item: RateLimitItem = parse(rate)
        except ValueError:
            raise ConfigError(
                f"invalid rate limit {rate!r}", hint="write it as COUNT/PERIOD, e.g. 200/minute or 5/10 seconds"
            ) from None
        self.rate = rate
        self.namespace = namespace
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())

    def hit(self, key: str) -> Verdict:
        if self._limiter.hit(self.item, self.namespace, key):
            return Verdict(True, 0)
        reset = self._limiter.get_window_stats(self.item, self.namespace, key).reset_time
        return Verdict(False, max(1, math.ceil(reset - time.time())))

    def reset(self, key: str) -> None:
        """Forget ``key``'s requests (after a successful login, say)."""
        self._limiter.clear(self.item, self.namespace, key)

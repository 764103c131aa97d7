"""Diagnostics handlers: a no-op, a sleeper, a failure on demand. Useful to test schedules,
timeouts, retries and alerts without touching anything."""

from __future__ import annotations

import time

from pydantic import Field

from upkeep.engine.context import RunContext
from upkeep.engine.registry import HandlerConfig, handler, overridable


@handler("debug.noop")
def noop(ctx: RunContext, config: HandlerConfig) -> dict:
    """Do nothing and succeed (for testing schedules and throughput); says when the run was confirmed."""
    return {"summary": "nothing to do (confirmed)" if ctx.confirm else "nothing to do"}


class SleepConfig(HandlerConfig):
    seconds: float = overridable(1.0, ge=0, le=86_400, description="How long to sleep")
    busy: bool = Field(False, description="Spin in pure Python ignoring deadline and cancel (tests timeouts)")
    outcome: str = overridable("ok", pattern="^(ok|warning|critical)$", description="Outcome to report")


@handler("debug.sleep", config=SleepConfig)
def sleep(ctx: RunContext, config: SleepConfig) -> dict:
    """Sleep (checking for cancel each 0.1 s), or spin without looking when ``busy``."""
    end = time.monotonic() + config.seconds
    steps = 0
    while time.monotonic() < end:
        if config.busy:
            steps += 1
            continue
        ctx.check_cancelled()
        time.sleep(min(0.1, max(0.0, end - time.monotonic())))
        steps += 1
        if steps % 10 == 0:
            ctx.progress(
                1 - (end - time.monotonic()) / config.seconds if config.seconds else 1.0,
                f"{steps / 10:.0f}s slept",
            )
    return {"outcome": config.outcome, "summary": f"slept {config.seconds:g}s"}


class FailConfig(HandlerConfig):
    fail_attempts: int = overridable(1, ge=0, le=1000, description="Fail while the attempt number is at most this")
    message: str = Field("failing on purpose", description="The error message")


@handler("debug.fail", config=FailConfig)
def fail(ctx: RunContext, config: FailConfig) -> dict:
    """Fail the first ``fail_attempts`` attempts, then succeed (tests retries and alerts)."""
    if ctx.attempt <= config.fail_attempts:
        raise RuntimeError(f"{config.message} (attempt {ctx.attempt})")
    return {"summary": f"succeeded on attempt {ctx.attempt}"}

"""The engine's housekeeping: stale-run recovery and run-history expiry."""

from __future__ import annotations

from pydantic import Field

from upkeep.bounds import MAX_DAYS
from upkeep.engine.context import RunContext
from upkeep.engine.registry import HandlerConfig, handler


class CleanupStaleConfig(HandlerConfig):
    """Staleness is judged by heartbeat (see the scheduler settings), never by start time."""


@handler("runs.cleanup_stale", config=CleanupStaleConfig, aliases=["stale_run.cleanup"], destructive=True)
def cleanup_stale(ctx: RunContext, config: CleanupStaleConfig) -> dict:
    """Recover runs whose worker died: kill leftovers of the dead attempt, then retry or fail it.

    The same code the scheduler's reaper runs every few seconds, on demand.
    """
    report = ctx.services.reap(dry_run=ctx.dry_run)
    for item in report["recovered"]:
        verb = "would recover" if ctx.dry_run else "recovered"
        ctx.info("recover", f"{verb} run {item['run_id']}: {item['reason']}", **item)
    for run_id in report["requeued"]:
        ctx.info("requeue", f"{'would requeue' if ctx.dry_run else 'requeued'} run {run_id}", run_id=run_id)
    count = len(report["recovered"])
    prefix = "would recover" if ctx.dry_run else "recovered"
    return {
        **report,
        "dry_run": ctx.dry_run,
        "summary": f"{prefix} {count} stale run(s), {len(report['requeued'])} requeued",
    }


class CleanupExpiredConfig(HandlerConfig):
    retention_days: int = Field(
        30, ge=1, le=MAX_DAYS, description="Delete terminal runs that ended more than this many days ago"
    )
    batch_size: int = Field(1000, ge=1, le=100_000, description="At most this many runs per execution")


@handler("runs.cleanup_expired", config=CleanupExpiredConfig, aliases=["gc.cleanup"], destructive=True)
def cleanup_expired(ctx: RunContext, config: CleanupExpiredConfig) -> dict:
    """Delete old terminal runs (completed, failed, cancelled, timed out, skipped) with their events.

    Never a pending, submitted or running run.
    """
    result = ctx.services.cleanup_expired(
        retention_days=config.retention_days, batch_size=config.batch_size, dry_run=ctx.dry_run, now=ctx.now()
    )
    verb = "would delete" if ctx.dry_run else "deleted"
    ctx.info(
        "cleanup",
        f"{verb} {result['runs']} run(s) and {result['events']} event(s) older than {config.retention_days} days",
        **result,
    )
    return {
        **result,
        "dry_run": ctx.dry_run,
        "summary": f"{verb} {result['runs']} run(s), {result['remaining']} more expired",
    }

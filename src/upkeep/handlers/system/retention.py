"""``retention.enforce``: delete files by age and count, always keeping the newest ``min_keep``."""

from __future__ import annotations

import glob
import os
from datetime import UTC, datetime, timedelta

from pydantic import Field, model_validator

from upkeep.bounds import MAX_COUNT, MAX_DAYS
from upkeep.engine.context import RunContext
from upkeep.engine.registry import HandlerConfig, handler, host_scoped


class RetentionConfig(HandlerConfig):
    paths: list[str] = host_scoped(min_length=1, description="Glob patterns of the files the policy covers")
    max_age_days: float | None = Field(None, gt=0, le=MAX_DAYS, description="Delete files older than this")
    keep_last: int | None = Field(None, ge=0, le=MAX_COUNT, description="Keep at most this many newest files")
    min_keep: int = Field(1, ge=0, le=MAX_COUNT, description="Never delete the newest N files, whatever the age")

    @model_validator(mode="after")
    def _some_rule(self) -> RetentionConfig:
        if self.max_age_days is None and self.keep_last is None:
            raise ValueError("set max_age_days and/or keep_last")
        return self


def select_for_deletion(
    files: list[tuple[str, float]],
    *,
    now: float,
    max_age_days: float | None,
    keep_last: int | None,
    min_keep: int,
) -> list[str]:
    """Paths to delete from (path, mtime) pairs: pure, so it can be tested exhaustively."""
    ordered = sorted(files, key=lambda f: (f[1], f[0]), reverse=True)  # newest first
    doomed = []
    for index, (path, mtime) in enumerate(ordered):
        if index < min_keep:
            continue
        too_many = keep_last is not None and index >= keep_last
        too_old = max_age_days is not None and now - mtime > max_age_days * 86400
        if too_many or too_old:
            doomed.append(path)
    return doomed


@handler("retention.enforce", config=RetentionConfig, destructive=True)
def enforce(ctx: RunContext, config: RetentionConfig) -> dict:
    """Delete files matched by ``paths`` that are older than ``max_age_days`` or beyond ``keep_last``."""
    files = []
    for pattern in config.paths:
        for path in glob.glob(os.path.expanduser(pattern)):
            if os.path.isfile(path) and not os.path.islink(path):
                files.append((path, os.stat(path).st_mtime))
    now = ctx.now().timestamp()
    doomed = select_for_deletion(
        files, now=now, max_age_days=config.max_age_days, keep_last=config.keep_last, min_keep=config.min_keep
    )
    rules = [f"older than {config.max_age_days:g} days"] if config.max_age_days else []
    rules += [f"beyond the newest {config.keep_last}"] if config.keep_last is not None else []
    ctx.scope(
        doomed,
        f"{len(files)} files match {', '.join(config.paths)}; {' or '.join(rules)}, "
        f"keeping the newest {config.min_keep}",
        what="files to delete",
    )
    freed = 0
    for path in doomed:
        ctx.check_cancelled()
        size = os.stat(path).st_size
        mtime = datetime.fromtimestamp(os.stat(path).st_mtime, UTC)
        age = (ctx.now() - mtime) / timedelta(days=1)
        if ctx.dry_run:
            ctx.info(
                "plan",
                f"would delete {path} ({size} bytes, {age:.1f} days old)",
                action="delete",
                path=path,
                size=size,
            )
        else:
            os.unlink(path)
            ctx.info("delete", f"deleted {path}", path=path, size=size)
        freed += size
    verb = "would delete" if ctx.dry_run else "deleted"
    return {
        "matched": len(files),
        "deleted": [] if ctx.dry_run else doomed,
        "planned": doomed if ctx.dry_run else [],
        "bytes": freed,
        "dry_run": ctx.dry_run,
        "summary": f"{verb} {len(doomed)} of {len(files)} file(s), {freed} bytes",
    }

"""Task rows for benchmarks: bulk-inserted with Core, so every column not given takes the model's
default."""

from __future__ import annotations

from datetime import datetime, timedelta


def spread_tasks(count: int, start: datetime, *, period_seconds: int = 60) -> list[dict]:
    """``count`` no-op tasks ``@every {period}s`` whose first slots are spread evenly over one period."""
    rows = []
    for i in range(count):
        slot = start + timedelta(milliseconds=i * period_seconds * 1000 / count)
        rows.append(
            dict(
                name=f"t{i}",
                task_type="debug.noop",
                schedule=f"@every {period_seconds}s",
                schedule_anchor=slot,
                next_run_at=slot,
                created_at=start,
                updated_at=start,
            )
        )
    return rows

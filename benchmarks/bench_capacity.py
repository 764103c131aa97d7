"""capacity.plan over a year of samples, the weekly digest, and the .env parser.

1. capacity.plan on 40 metrics x 1,460 samples (a year, every 6 h) in a SQLite store, against the
   baseline of only reading those sample records (the floor any planner pays).
2. build + render the monthly digest over 5,000 runs, against the baseline of only querying them.
3. config.audit's .env parser on a 5,000-line file, against python-dotenv's ``dotenv_values`` (a parser
   that also does not execute anything), when installed.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

METRICS = 40
SAMPLES = 1460
RUNS = 5000


def _timed(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


def main() -> None:
    from upkeep.app.run_services import RunServices
    from upkeep.engine.registry import REGISTRY
    from upkeep.handlers.audit.config import parse_env_text
    from upkeep.handlers.trends.capacity import sample_key
    from upkeep.reports import build_digest, render_html
    from upkeep.settings import Settings
    from upkeep.store.db import Store
    from upkeep.store.models import Record, Run
    from upkeep.store.records import Records

    sys_path = Path(tempfile.mkdtemp(prefix="upkeep-bench-capacity-"))
    try:
        store = Store(f"sqlite:///{sys_path / 'upkeep.db'}")
        store.upgrade()
        now = datetime.now(UTC).replace(microsecond=0)
        start = now - timedelta(days=365)
        rows = []
        for i in range(SAMPLES):
            at = start + timedelta(hours=6 * i)
            metrics = {
                f"disk.used_percent:/m{m}": 20 + 0.1 * i / 4 * (m % 5) / 5 + (i % 7) * 0.01 for m in range(METRICS)
            }
            rows.append(
                Record(
                    domain="capacity",
                    key=sample_key(at),
                    value={"at": at.isoformat(), "metrics": metrics},
                    created_at=at,
                    updated_at=at,
                )
            )
        runs = [
            Run(
                task_name=f"task-{i % 30}",
                task_type="health.check",
                status="failed" if i % 50 == 0 else "completed",
                outcome="ok",
                started_at=now - timedelta(minutes=8 * i + 1),
                finished_at=now - timedelta(minutes=8 * i),
            )
            for i in range(RUNS)
        ]
        with store.write() as s:
            s.add_all(rows)
            s.add_all(runs)
        records = Records(store, "capacity")
        read_s, items = _timed(lambda: records.items("sample/"))
        services = RunServices(store, Settings(config=sys_path / "upkeep.yaml"))
        spec = REGISTRY.get("capacity.plan")

        from tests.support.contexts import make_context

        def run_plan():
            ctx = make_context(store, "capacity.plan", services=services)
            return spec.func(ctx, spec.validate_config({"lookback_days": 400}))

        plan_s, result = _timed(run_plan)
        print(
            f"capacity.plan: {METRICS} metrics x {len(items)} samples: {plan_s * 1000:.0f} ms "
            f"(reading the samples alone {read_s * 1000:.0f} ms; ratio {plan_s / read_s:.2f}x); "
            f"outcome {result['outcome']}"
        )
        query_s, history = _timed(lambda: services.run_history(since=now - timedelta(days=30), until=now))
        digest_s, digest = _timed(lambda: build_digest(services, "month", now))
        render_s, html = _timed(lambda: render_html(digest))
        print(
            f"monthly digest over {len(history)} runs: build {digest_s * 1000:.0f} ms, render HTML "
            f"{render_s * 1000:.1f} ms ({len(html) // 1024} KiB); run_history query alone {query_s * 1000:.0f} ms "
            f"(ratio {digest_s / query_s:.2f}x)"
        )
        lines = []
        for i in range(5000):
            lines.append(
                f'export KEY_{i}="value with spaces {i}"'
                if i % 3 == 0
                else f"KEY_{i}='single {i}'"
                if i % 3 == 1
                else f"KEY_{i}=plain{i} # comment"
            )
        text = "\n".join(lines) + "\n"
        ours_s, parsed = _timed(lambda: parse_env_text(text))
        env_file = sys_path / "big.env"
        env_file.write_text(text)
        try:
            from dotenv import dotenv_values

            theirs_s, values = _timed(lambda: dotenv_values(env_file, interpolate=False))
            assert len(values) == len(parsed.entries)
            print(
                f".env parser, 5,000 lines: {ours_s * 1000:.1f} ms; python-dotenv {theirs_s * 1000:.1f} ms "
                f"(ratio {ours_s / theirs_s:.2f}x)"
            )
        except ImportError:
            print(f".env parser, 5,000 lines: {ours_s * 1000:.1f} ms (python-dotenv not installed: no baseline)")
        store.dispose()
    finally:
        shutil.rmtree(sys_path, ignore_errors=True)

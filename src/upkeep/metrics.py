"""Prometheus metrics at ``GET /metrics``, read from the store at scrape time (right across processes).

Metrics:

- ``upkeep_runs_total{task,status,outcome}`` (counter): runs that ended (completed, failed,
  timed_out, cancelled, skipped). ``task`` is empty for one-off runs without a task.
- ``upkeep_run_duration_seconds{task_type}`` (histogram, buckets ``DURATION_BUCKETS``): start to end
  of runs that started. Labelled by handler type, not task, to keep the series count bounded with
  thousands of tasks; per-task durations are in the API (``last_duration_seconds``).
- ``upkeep_task_last_success_timestamp_seconds{task}``, ``upkeep_task_next_run_timestamp_seconds{task}``
  (gauges; a task that never succeeded / has no next run has no sample).
- ``upkeep_tasks_overdue`` (gauge): the engine's overdue tasks (``Queries.overdue``), as last
  computed by the alerter (at most ``overdue_every`` old), or computed here when no alerter ran lately.
- ``upkeep_queue_depth{status="pending"|"submitted"}`` (gauge).
- ``upkeep_scheduler_last_tick_timestamp_seconds`` (gauge): the newest scheduler liveness record
  (schedulers record their tick at most every 5 s).
- ``upkeep_alerter_last_evaluation_timestamp_seconds`` (gauge): when the alerter last ran.

Counters are persistent, not computed from the ``runs`` table: the alerter adds each run exactly
once, when it processes the run's end (``counters_after``, written in the transaction that moves
its cursor), into the records domain ``_metrics``. So they survive the retention cleanup that deletes old runs and
stay monotonic, and a scrape reads one row per task instead of aggregating the run history. They
advance while an alerter runs (every scheduler and ``upkeep serve`` run one), a few seconds behind.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from upkeep.clock import utcnow
from upkeep.store.db import Store
from upkeep.store.models import PENDING, SUBMITTED, Instance, Record, ScheduledTask
from upkeep.store.runs import count_by_status, overdue_tasks

log = logging.getLogger(__name__)

METRICS_DOMAIN = "_metrics"
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0)
OVERDUE_FRESH_SECONDS = 300.0  # the alerter's overdue snapshot is used while younger than this
OVERDUE_CACHE_SECONDS = 60.0  # otherwise computed here at most this often
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# --- the persistent counters (written by the alerter) ---------------------------------------------


def counters_after(s, runs: Iterable[Any]) -> dict[str, Any]:
    """The counter records with finished runs (rows with task_name, task_type, status, outcome,
    started_at, finished_at) added: the stored ones as read in ``s``, to write with
    ``records.put_many(s, METRICS_DOMAIN, ...)``. Only the alerter writes them, so it may read them
    in its read snapshot and write them in its write transaction once it knows (from its cursor)
    that no other evaluation committed in between."""
    from upkeep.store import records as _records

    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    durations: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        counts[run.task_name or ""][f"{run.status}|{run.outcome or ''}"] += 1
        if run.started_at is not None and run.finished_at is not None:
            durations[run.task_type].append(max(0.0, (run.finished_at - run.started_at).total_seconds()))
    stored = _records.get_many(s, METRICS_DOMAIN, [f"runs:{t}" for t in counts] + [f"duration:{t}" for t in durations])
    changed: dict[str, Any] = {}
    for task, delta in counts.items():
        key = f"runs:{task}"
        value = dict(stored.get(key) or {})
        for label, n in delta.items():
            value[label] = int(value.get(label, 0)) + n
        changed[key] = value
    for task_type, values in durations.items():
        key = f"duration:{task_type}"
        hist = dict(stored.get(key) or {})
        buckets = list(hist.get("buckets") or [0] * len(DURATION_BUCKETS))
        if len(buckets) != len(DURATION_BUCKETS):
            buckets = [0] * len(DURATION_BUCKETS)  # bucket bounds changed: restart (a counter reset)
            hist = {}
        for seconds in values:
            index = bisect.bisect_left(DURATION_BUCKETS, seconds)
            if index < len(buckets):
                buckets[index] += 1  # stored per bucket; cumulated when exposed
        hist.update(
            buckets=buckets,
            sum=float(hist.get("sum", 0.0)) + sum(values),
            count=int(hist.get("count", 0)) + len(values),
        )
        changed[key] = hist
    return changed


# --- the collector --------------------------------------------------------------------------------


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


class StoreCollector(Collector):
    """Reads every metric from the store when Prometheus scrapes (aggregate queries only)."""

    def __init__(self, store: Store, settings: Any = None):
        self.store = store
        self.settings = settings
        self._overdue_cache: tuple[float, int] | None = None

    def describe(self) -> list:
        return []  # not known before a scrape: skip the registry's describe-by-collect

    def collect(self):
        with self.store.read() as s:
            records = dict(s.execute(sa.select(Record.key, Record.value).where(Record.domain == METRICS_DOMAIN)).all())
            tasks = s.execute(
                sa.select(ScheduledTask.name, ScheduledTask.last_success_at, ScheduledTask.next_run_at)
            ).all()
            depth = count_by_status(s, statuses=(PENDING, SUBMITTED))
            last_tick = s.execute(
                sa.select(sa.func.max(Instance.last_seen_at)).where(Instance.role == "scheduler")
            ).scalar()
            alerts = dict(
                s.execute(
                    sa.select(Record.key, Record.value).where(
                        Record.domain == "_alerts", Record.key.in_(("overdue", "last_evaluation"))
                    )
                ).all()
            )
        yield from self._runs(records)
        yield self._durations(records)
        success = GaugeMetricFamily(
            "upkeep_task_last_success_timestamp_seconds", "When the task last succeeded (Unix time)", labels=["task"]
        )
        next_run = GaugeMetricFamily(
            "upkeep_task_next_run_timestamp_seconds", "The task's next scheduled slot (Unix time)", labels=["task"]
        )
        for name, last_success, next_at in tasks:
            if last_success is not None:
                success.add_metric([name], _ts(_aware(last_success)))
            if next_at is not None:
                next_run.add_metric([name], _ts(_aware(next_at)))
        yield success
        yield next_run
        yield GaugeMetricFamily(
            "upkeep_tasks_overdue", "Tasks overdue by the engine's definition", value=self._overdue(alerts)
        )
        queue = GaugeMetricFamily("upkeep_queue_depth", "Runs waiting to start", labels=["status"])
        for status in (PENDING, SUBMITTED):
            queue.add_metric([status], float(depth.get(status, 0)))
        yield queue
        tick = GaugeMetricFamily(
            "upkeep_scheduler_last_tick_timestamp_seconds", "Last scheduler tick recorded (Unix time, 5 s resolution)"
        )
        if last_tick is not None:
            tick.add_metric([], _ts(_aware(last_tick)))
        yield tick
        evaluation = GaugeMetricFamily(
            "upkeep_alerter_last_evaluation_timestamp_seconds", "When the alerter last evaluated (Unix time)"
        )
        last_eval = (alerts.get("last_evaluation") or {}).get("at")
        if last_eval:
            evaluation.add_metric([], datetime.fromisoformat(last_eval).timestamp())
        yield evaluation

    @staticmethod
    def _runs(records: dict[str, Any]):
        family = CounterMetricFamily(
            "upkeep_runs", "Runs that ended, by task, status and outcome", labels=["task", "status", "outcome"]
        )
        for key, value in sorted(records.items()):
            if not key.startswith("runs:"):
                continue
            task = key[len("runs:") :]
            for label, count in sorted((value or {}).items()):
                status, _, outcome = label.partition("|")
                family.add_metric([task, status, outcome], float(count))
        yield family

    @staticmethod
    def _durations(records: dict[str, Any]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "upkeep_run_duration_seconds", "Run duration from start to end", labels=["task_type"]
        )
        for key, value in sorted(records.items()):
            if not key.startswith("duration:") or not value:
                continue
            per_bucket: Sequence[int] = value.get("buckets") or [0] * len(DURATION_BUCKETS)
            cumulative, total = [], 0
            for bound, n in zip(DURATION_BUCKETS, per_bucket, strict=False):
                total += int(n)
                cumulative.append((_bound(bound), float(total)))
            count = float(value.get("count", 0))
            cumulative.append(("+Inf", count))
            family.add_metric([key[len("duration:") :]], cumulative, sum_value=float(value.get("sum", 0.0)))
        return family

    def _overdue(self, alerts: dict[str, Any]) -> float:
        snapshot = alerts.get("overdue") or {}
        at = snapshot.get("at")
        if at and datetime.now(UTC) - datetime.fromisoformat(at) < timedelta(seconds=OVERDUE_FRESH_SECONDS):
            return float(len(snapshot.get("tasks") or []))
        if self._overdue_cache and time.monotonic() - self._overdue_cache[0] < OVERDUE_CACHE_SECONDS:
            return float(self._overdue_cache[1])
        count = 0
        if self.settings is not None:
            try:
                with self.store.read() as s:
                    count = len(overdue_tasks(s, utcnow()))
            except Exception:
                log.exception("overdue count for /metrics failed")
        self._overdue_cache = (time.monotonic(), count)
        return float(count)


def _bound(value: float) -> str:
    return f"{value:g}" if value != int(value) else f"{value:.1f}"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def registry_for(store: Store, settings: Any = None) -> CollectorRegistry:
    from upkeep.heartbeats.metrics import HeartbeatCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, settings))
    registry.register(HeartbeatCollector(store))
    return registry


def render(store: Store, settings: Any = None) -> bytes:
    """The exposition text of every metric (what ``GET /metrics`` answers)."""
    return generate_latest(registry_for(store, settings))


def install(app, settings: Any, store: Store, *, dependencies: list | None = None, path: str = "/metrics") -> None:
    """Add ``GET /metrics`` to a FastAPI app; ``dependencies`` (e.g. the viewer-key check) guard it."""
    from fastapi import Depends, Response

    registry = registry_for(store, settings)

    def metrics_endpoint() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE)

    app.add_api_route(
        path,
        metrics_endpoint,
        methods=["GET"],
        tags=["health"],
        summary="Prometheus metrics",
        response_class=Response,
        response_model=None,
        dependencies=[d if hasattr(d, "dependency") else Depends(d) for d in (dependencies or [])],
        responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {}}, "description": "Prometheus text format"}},
    )

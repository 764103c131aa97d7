"""Heartbeat metrics for ``GET /metrics``, read from the store at scrape time:

- ``upkeep_heartbeat_up{heartbeat}`` (gauge): 1 while the monitor is up, new, late or running,
  0 while it is down (``state.status_of``); paused monitors have no sample;
- ``upkeep_heartbeat_last_ping_timestamp_seconds{heartbeat}`` and
  ``upkeep_heartbeat_expected_timestamp_seconds{heartbeat}`` (gauges: the last ping, the next due);
- ``upkeep_heartbeat_pings_total{heartbeat}`` (counter): pings received;
- ``upkeep_heartbeat_unknown_pings_total`` (counter): pings to tokens no monitor holds.
"""

from __future__ import annotations

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from upkeep.clock import utcnow
from upkeep.heartbeats.pings import read_unknown
from upkeep.heartbeats.state import DOWN, PAUSED, status_of
from upkeep.store.db import Store
from upkeep.store.models import Heartbeat


class HeartbeatCollector(Collector):
    def __init__(self, store: Store):
        self.store = store

    def describe(self) -> list:
        return []

    def collect(self):
        now = utcnow()
        with self.store.read() as s:
            rows = list(s.execute(sa.select(Heartbeat).order_by(Heartbeat.name)).scalars())
        up = GaugeMetricFamily("upkeep_heartbeat_up", "1 unless the monitor is down", labels=["heartbeat"])
        last = GaugeMetricFamily(
            "upkeep_heartbeat_last_ping_timestamp_seconds", "When the monitor's last ping came", labels=["heartbeat"]
        )
        expected = GaugeMetricFamily(
            "upkeep_heartbeat_expected_timestamp_seconds", "When the next ping is due", labels=["heartbeat"]
        )
        pings = CounterMetricFamily("upkeep_heartbeat_pings", "Pings received", labels=["heartbeat"])
        for row in rows:
            status, _ = status_of(row, now)
            if status != PAUSED:
                up.add_metric([row.name], 0.0 if status == DOWN else 1.0)
            if row.last_ping_at is not None:
                last.add_metric([row.name], row.last_ping_at.timestamp())
            if row.expected_at is not None:
                expected.add_metric([row.name], row.expected_at.timestamp())
            pings.add_metric([row.name], float(row.ping_count))
        yield from (up, last, expected, pings)
        yield CounterMetricFamily(
            "upkeep_heartbeat_unknown_pings",
            "Pings to tokens no monitor holds",
            value=read_unknown(self.store)["count"],
        )

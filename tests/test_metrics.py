"""``GET /metrics``: Prometheus text that parses and moves when runs complete."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import FastAPI, Header, HTTPException
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from upkeep import metrics
from upkeep.app import Upkeep
from upkeep.engine import lifecycle
from upkeep.engine.execute import execute_claimed
from upkeep.engine.scheduler import record_instance
from upkeep.notify.alerter import Alerter
from upkeep.settings import Settings
from upkeep.store.db import Store


@pytest.fixture
def world(tmp_path):
    settings = Settings(config=tmp_path / "upkeep.yaml", heartbeat_seconds=5)
    store = Store(settings.resolved_database_url)
    store.upgrade()
    service = Upkeep(settings, store)
    alerter = Alerter(store, settings)
    alerter.evaluate_once(datetime.now(UTC))
    app = FastAPI()
    metrics.install(app, settings, store)
    yield settings, store, service, alerter, TestClient(app)
    store.dispose()


def scrape(client) -> dict[str, list]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples, name, **labels) -> float | None:
    for sample in samples.get(name, []):
        if all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return None


def execute(settings, store, run_id):
    claimed = lifecycle.claim(store, run_id, lifecycle.WorkerIdentity.current())
    return execute_claimed(store, claimed, settings)


def test_metrics_parse_and_move_when_runs_complete(world):
    settings, store, service, alerter, client = world
    service.create_task({"name": "noop", "type": "debug.noop", "schedule": "@every 1h"}, actor="test")
    service.create_task({"name": "broken", "type": "debug.fail", "config": {"fail_attempts": 9}}, actor="test")
    record_instance(store, "scheduler:test", "scheduler", datetime.now(UTC))

    before = scrape(client)
    assert value(before, "upkeep_runs_total", task="noop", status="completed", outcome="ok") is None
    assert value(before, "upkeep_task_next_run_timestamp_seconds", task="noop") > datetime.now(UTC).timestamp()
    assert value(before, "upkeep_task_last_success_timestamp_seconds", task="noop") is None
    assert value(before, "upkeep_scheduler_last_tick_timestamp_seconds") > 0
    assert value(before, "upkeep_tasks_overdue") == 0

    first = service.trigger("noop", actor="test")["id"]
    second = service.trigger("noop", actor="test")["id"]
    pending = scrape(client)
    assert value(pending, "upkeep_queue_depth", status="pending") == 2
    assert value(pending, "upkeep_queue_depth", status="submitted") == 0

    execute(settings, store, first)
    execute(settings, store, second)
    execute(settings, store, service.trigger("broken", actor="test")["id"])
    alerter.evaluate_once(datetime.now(UTC))

    after = scrape(client)
    assert value(after, "upkeep_runs_total", task="noop", status="completed", outcome="ok") == 2
    assert value(after, "upkeep_runs_total", task="broken", status="failed", outcome="") == 1
    assert value(after, "upkeep_queue_depth", status="pending") == 0
    assert value(after, "upkeep_task_last_success_timestamp_seconds", task="noop") > 0
    assert value(after, "upkeep_run_duration_seconds_count", task_type="debug.noop") == 2
    assert value(after, "upkeep_run_duration_seconds_bucket", task_type="debug.noop", le="+Inf") == 2
    assert value(after, "upkeep_run_duration_seconds_bucket", task_type="debug.noop", le="1.0") == 2
    assert value(after, "upkeep_alerter_last_evaluation_timestamp_seconds") > 0

    execute(settings, store, service.trigger("noop", actor="test")["id"])
    alerter.evaluate_once(datetime.now(UTC))
    alerter.evaluate_once(datetime.now(UTC))  # evaluating again counts nothing twice
    later = scrape(client)
    assert value(later, "upkeep_runs_total", task="noop", status="completed", outcome="ok") == 3
    assert value(later, "upkeep_run_duration_seconds_count", task_type="debug.noop") == 3


def test_counters_survive_the_deletion_of_old_runs(world):
    import sqlalchemy as sa

    from upkeep.store.models import Run, RunEvent

    settings, store, service, alerter, client = world
    service.create_task({"name": "noop", "type": "debug.noop"}, actor="test")
    execute(settings, store, service.trigger("noop", actor="test")["id"])
    alerter.evaluate_once(datetime.now(UTC))
    with store.write() as s:  # what a retention cleanup does
        s.execute(sa.delete(RunEvent))
        s.execute(sa.delete(Run))
    assert value(scrape(client), "upkeep_runs_total", task="noop", status="completed", outcome="ok") == 1


def test_metrics_can_require_a_key(tmp_path):
    settings = Settings(config=tmp_path / "upkeep.yaml")
    store = Store(settings.resolved_database_url)
    store.upgrade()

    def viewer(authorization: str | None = Header(None)) -> None:
        if authorization != "Bearer viewer":
            raise HTTPException(401, "an API key is required")

    app = FastAPI()
    metrics.install(app, settings, store, dependencies=[viewer])
    client = TestClient(app)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer viewer"}).status_code == 200
    store.dispose()

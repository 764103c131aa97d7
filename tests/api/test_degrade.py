"""Degrade, don't fail: reads keep working on a full disk, /healthz says which part is unhealthy,
and the API answers 503 with Retry-After while the store is unreachable.

The full disk is a real one: a small tmpfs holding the SQLite store (as root, as CI runs; mounted
and unmounted by the test). The unreachable store is a real PostgreSQL cluster of the test's own,
stopped with ``pg_ctl -m immediate`` and started again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _env import make_env

from support.disks import small_tmpfs
from support.polling import eventually
from support.servers import start_postgres
from upkeep.engine.scheduler import Scheduler
from upkeep.store.db import Store

TASK = {"name": "nightly", "type": "debug.noop", "schedule": "@daily"}


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs, unmounted afterwards."""
    with small_tmpfs(tmp_path / "disk", "16m") as mount:
        yield mount


def _fill(directory: Path) -> Path:
    """Write zeros until the filesystem is full; the file, to delete to free the space."""
    filler = directory / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def test_on_a_full_disk_reads_work_writes_answer_503_and_healthz_names_the_store_and_scheduler(small_disk, tmp_path):
    store = Store(f"sqlite:///{small_disk / 'upkeep.db'}")
    store.upgrade()
    env = make_env(tmp_path, store)
    scheduler = None
    try:
        assert env.post("/api/v1/scheduled-tasks", json=TASK).status_code == 201
        scheduler = Scheduler(store, env.settings.model_copy(update={"scheduler_max_sleep_seconds": 0.2}))
        env.app.state.health.scheduler = scheduler
        scheduler.start()
        assert env.client.get("/healthz").status_code == 200
        filler = _fill(small_disk)

        # reads: a key whose last use is not recorded yet (the record is best effort), and /metrics
        listed = env.get("/api/v1/scheduled-tasks", role="viewer")
        assert listed.status_code == 200, listed.text
        assert [t["name"] for t in listed.json()["items"]] == ["nightly"]
        assert env.get("/api/v1/runs", role="viewer").status_code == 200
        assert env.get("/metrics", role="viewer").status_code == 200

        # a write: 503, a problem saying why, and when to try again
        refused = env.post("/api/v1/scheduled-tasks", json={**TASK, "name": "another"})
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"].isdigit()
        assert "full" in refused.json()["detail"]

        env.app.state.health._probed_at = -float("inf")  # probe now rather than within 10 s
        eventually(lambda: scheduler.last_error, "the scheduler's tick failing on the full disk", timeout=60)
        health = env.client.get("/healthz")
        assert health.status_code == 503 and health.headers["retry-after"].isdigit()
        detail = health.json()["detail"]
        assert "store: refuses writes" in detail and "scheduler: its last tick failed" in detail, detail
        assert "full" in detail

        filler.unlink()
        eventually(lambda: scheduler.last_error is None, "a tick succeeding once there is space again", timeout=60)
        env.app.state.health._probed_at = -float("inf")
        assert env.client.get("/healthz").json() == {"status": "ok"}
        assert env.post("/api/v1/scheduled-tasks", json={**TASK, "name": "another"}).status_code == 201
    finally:
        if scheduler is not None:
            scheduler.stop()
        env.client.close()
        store.dispose()


def test_while_postgresql_is_down_the_api_answers_503_with_retry_after(tmp_path):
    server = start_postgres()
    try:
        store = Store(server.url(server.create_database()))
        store.upgrade()
        env = make_env(tmp_path, store)
        try:
            assert env.post("/api/v1/scheduled-tasks", json=TASK).status_code == 201
            server.stop("immediate")
            for path in ("/api/v1/scheduled-tasks", "/api/v1/runs"):
                down = env.get(path)
                assert down.status_code == 503, down.text
                assert down.headers["retry-after"].isdigit()
                assert down.headers["content-type"].startswith("application/problem+json")
                assert "store is unavailable" in down.json()["detail"]
            health = env.client.get("/healthz")
            assert health.status_code == 503 and "store: refuses writes" in health.json()["detail"]
            server.start()
            eventually(
                lambda: env.get("/api/v1/scheduled-tasks").status_code == 200, "the API answering again", timeout=60
            )
            env.app.state.health._probed_at = -float("inf")
            assert env.client.get("/healthz").status_code == 200
        finally:
            env.client.close()
            store.dispose()
    finally:
        server.remove()


def test_healthz_names_a_scheduler_that_stopped_ticking(api):
    scheduler = Scheduler(api.store, api.settings)  # never started: its last tick is its creation
    api.app.state.health.scheduler = scheduler
    assert api.client.get("/healthz").json() == {"status": "ok"}
    scheduler.last_tick -= 2 * api.settings.scheduler_max_sleep_seconds + 11  # as if it hung that long
    health = api.client.get("/healthz")
    assert health.status_code == 503
    assert health.json()["detail"].startswith("scheduler: no tick for"), health.json()
    scheduler.run_once()
    assert api.client.get("/healthz").json() == {"status": "ok"}

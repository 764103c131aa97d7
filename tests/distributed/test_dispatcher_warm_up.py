"""The Celery dispatcher connects to the broker when it starts, not at the first due run, and a
broker that is not there yet does not stop it. A real redis-server."""

from __future__ import annotations

import logging

import pytest
import redis

from support.servers import free_port, start_redis
from upkeep.distributed import CeleryDispatcher
from upkeep.settings import Settings


@pytest.fixture
def own_redis():
    """A redis-server of this test's own: the session's has other tests' clients coming and going."""
    server = start_redis()
    yield server
    server.remove()


def _clients(url: str) -> int:
    """Client connections the server has, this one left out."""
    with redis.Redis.from_url(url) as client:
        return len(client.client_list()) - 1


def test_the_dispatcher_is_connected_before_the_first_run(tmp_path, own_redis, sqlite_store):
    settings = Settings(config=tmp_path / "upkeep.yaml", executor="celery", broker_url=own_redis.url)
    dispatcher = CeleryDispatcher(settings, sqlite_store)
    assert _clients(own_redis.url) == 0
    dispatcher.warm_up()
    assert _clients(own_redis.url) == 1
    dispatcher.app.pool.force_close_all()


def test_a_broker_not_there_yet_leaves_a_warning_and_the_dispatcher_running(tmp_path, sqlite_store, caplog):
    settings = Settings(
        config=tmp_path / "upkeep.yaml", executor="celery", broker_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    dispatcher = CeleryDispatcher(settings, sqlite_store)
    with caplog.at_level(logging.WARNING, logger="upkeep.distributed"):
        dispatcher.warm_up()
    assert "could not connect to the broker yet" in caplog.text

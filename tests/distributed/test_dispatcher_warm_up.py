"""The Celery dispatcher connects to the broker when it starts, not at the first due run, and a
broker that is not there yet does not stop it. A real redis-server."""

from __future__ import annotations

import logging

import redis

from support.servers import free_port
from upkeep.distributed import CeleryDispatcher
from upkeep.settings import Settings


def _clients(url: str) -> int:
    """Client connections the server has, this one left out."""
    with redis.Redis.from_url(url) as client:
        return len(client.client_list()) - 1


def test_the_dispatcher_is_connected_before_the_first_run(tmp_path, redis_server, sqlite_store):
    settings = Settings(config=tmp_path / "upkeep.yaml", executor="celery", broker_url=redis_server.url)
    dispatcher = CeleryDispatcher(settings, sqlite_store)
    before = _clients(redis_server.url)
    dispatcher.warm_up()
    assert _clients(redis_server.url) == before + 1
    dispatcher.app.pool.force_close_all()


def test_a_broker_not_there_yet_leaves_a_warning_and_the_dispatcher_running(tmp_path, sqlite_store, caplog):
    settings = Settings(
        config=tmp_path / "upkeep.yaml", executor="celery", broker_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    dispatcher = CeleryDispatcher(settings, sqlite_store)
    with caplog.at_level(logging.WARNING, logger="upkeep.distributed"):
        dispatcher.warm_up()
    assert "could not connect to the broker yet" in caplog.text

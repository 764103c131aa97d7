"""Wake-ups: a sleeper is woken by a change on its host or on another host, never by itself."""

from __future__ import annotations

import time

import pytest

from upkeep.engine.wakeup import Notifier, broadcast, wake_local
from upkeep.store.db import Store


def _woken(notifier: Notifier, within: float) -> bool:
    return notifier.wait(within)


def test_a_broadcast_wakes_the_other_sleepers_on_the_host_but_not_its_sender(tmp_path):
    sender, other = Notifier(None, tmp_path), Notifier(None, tmp_path)
    try:
        wake_local(tmp_path, exclude=sender)
        assert _woken(other, 1.0)
        assert not _woken(sender, 0.2)
    finally:
        sender.close()
        other.close()


@pytest.fixture
def pg_store(pg_database):
    store = Store(pg_database)
    yield store
    store.dispose()


def test_notify_from_another_host_wakes_the_sleepers_of_this_one(pg_store, tmp_path):
    here, there = tmp_path / "here", tmp_path / "there"  # two wake domains: two hosts
    first, second = Notifier(pg_store, here), Notifier(pg_store, here)
    try:
        time.sleep(0.5)  # the process's one listener is connected
        first.drain()
        second.drain()
        broadcast(pg_store, there)
        assert _woken(first, 3.0)
        assert _woken(second, 3.0)
    finally:
        first.close()
        second.close()


def test_a_sleeper_is_not_woken_by_the_notify_of_its_own_host(pg_store, tmp_path):
    sleeper = Notifier(pg_store, tmp_path)
    try:
        time.sleep(0.5)
        broadcast(pg_store, tmp_path, exclude=sleeper)  # its own socket skipped; NOTIFY ignored
        assert not _woken(sleeper, 1.0)
    finally:
        sleeper.close()

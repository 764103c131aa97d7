"""Shared fixtures: real stores (SQLite file, throwaway PostgreSQL), real servers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.servers import start_postgres, start_redis
from upkeep.store.db import Store

ARTIFACTS = Path(os.environ.get("UPKEEP_TEST_ARTIFACTS", Path(__file__).parent.parent / "artifacts"))


@pytest.fixture(autouse=True)
def config_file(tmp_path) -> Path:
    """Every instance has a config file (upkeep refuses to start without one): an empty upkeep.yaml
    in the test's directory, which a test that needs more overwrites and one about a missing
    config removes."""
    path = tmp_path / "upkeep.yaml"
    path.write_text("# the config of a test instance\n")
    return path


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def pg_server():
    server = start_postgres()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def pg_database(pg_server):
    """A fresh, empty database on the session's throwaway cluster; its SQLAlchemy URL."""
    name = pg_server.create_database()
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture(scope="session")
def redis_server():
    server = start_redis()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def sqlite_store(tmp_path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'upkeep.db'}")
    store.upgrade()
    yield store
    store.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path) -> Store:
    """The engine's tests run against both stores."""
    url = f"sqlite:///{tmp_path / 'upkeep.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_database")
    store = Store(url)
    store.upgrade()
    yield store
    store.dispose()

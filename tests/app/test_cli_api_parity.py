"""The same operation through the CLI and through the API changes the store alike.

Each case prepares two fresh SQLite stores the same way, runs one task, run, key or silence
operation through ``upkeep`` (Typer's runner, in process) on one and through ``/api/v1`` (FastAPI's
TestClient) on the other, and compares what each changed: every row added, removed or altered,
audit entries included, with ids, times, tokens and the actor left out (the CLI acts as
``cli:<user>``, the API as ``key:<name>``).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from upkeep.app import Upkeep
from upkeep.app import alerts as alert_cases
from upkeep.app import keys as key_cases
from upkeep.cli.main import app as cli_app
from upkeep.settings import Settings
from upkeep.store.db import Store
from upkeep.store.models import Base

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from _env import make_env  # noqa: E402

ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?([+-]\d\d:\d\d|Z)?$")
IDS = {"id", "run_id", "task_id", "last_run_id", "alert_id"}
ACTORS = {"actor", "triggered_by", "created_by"}
SECRETS = {"token_hash", "prefix"}  # a key's token differs each time it is made
USAGE = {"last_used_at"}  # the API's own key is used by the request itself
UNTIL = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)


def _norm(value: Any, key: str = "") -> Any:
    if key in IDS and value is not None:
        return "<id>"
    if key in ACTORS and value is not None:
        return "<actor>"
    if key in SECRETS and value is not None:
        return "<secret>"
    if isinstance(value, datetime):
        return "<time>"
    if isinstance(value, str) and ISO_TIME.match(value):
        return "<time>"
    if isinstance(value, dict):
        return {k: _norm(v, k) for k, v in value.items() if k not in USAGE}
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    return value


def _rows(store: Store) -> dict[str, list[str]]:
    """Every row of every table, normalized (as text, to compare as multisets)."""
    out: dict[str, list[str]] = {}
    with store.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(sa.select(table)).mappings().all()
            out[table.name] = sorted(repr(_norm(dict(row))) for row in rows)
    return out


def _changes(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict[str, tuple[list[str], list[str]]]:
    """Per table, the normalized rows removed and added (an altered row is both)."""
    changed = {}
    for table in after:
        old, new = list(before.get(table, [])), list(after[table])
        removed = [r for r in old if r not in new or old.count(r) > new.count(r)]
        added = [r for r in new if r not in old or new.count(r) > old.count(r)]
        if removed or added:
            changed[table] = (sorted(set(removed)), sorted(set(added)))
    return changed


@dataclass
class Case:
    name: str
    cli: list[str]
    api: tuple[str, str, dict | None]  # method, path, JSON body
    setup: str = "task"


CASES = [
    Case(
        "create a task",
        ["tasks", "create", "nap", "--type", "debug.sleep", "--schedule", "0 3 * * *", "--set", "seconds=2"],
        (
            "post",
            "/api/v1/scheduled-tasks",
            {"name": "nap", "type": "debug.sleep", "schedule": "0 3 * * *", "config": {"seconds": 2}},
        ),
        setup="none",
    ),
    Case(
        "edit a task (config merged)",
        ["tasks", "set", "nightly", "schedule=0 4 * * *", "config.seconds=3", "description=moved"],
        (
            "patch",
            "/api/v1/scheduled-tasks/nightly",
            {"schedule": "0 4 * * *", "config": {"seconds": 3}, "description": "moved"},
        ),
    ),
    Case(
        "remove a config key",
        ["tasks", "set", "nightly", "config.seconds=null"],
        ("patch", "/api/v1/scheduled-tasks/nightly", {"config": {"seconds": None}}),
    ),
    Case("disable a task", ["tasks", "disable", "nightly"], ("post", "/api/v1/scheduled-tasks/nightly/disable", None)),
    Case("enable a task", ["tasks", "enable", "idle"], ("post", "/api/v1/scheduled-tasks/idle/enable", None)),
    Case("delete a task", ["tasks", "delete", "nightly", "--yes"], ("delete", "/api/v1/scheduled-tasks/nightly", None)),
    Case(
        "trigger a task",
        ["tasks", "trigger", "nightly", "--dry-run", "--set", "seconds=0"],
        ("post", "/api/v1/scheduled-tasks/nightly/run", {"dry_run": True, "overrides": {"seconds": 0}}),
    ),
    Case("cancel a run", ["runs", "cancel", "1"], ("post", "/api/v1/runs/1/cancel", None), setup="run"),
    Case(
        "create a key",
        ["keys", "create", "--name", "ci", "--role", "operator"],
        ("post", "/api/v1/keys", {"name": "ci", "role": "operator"}),
        setup="none",
    ),
    Case("revoke a key", ["keys", "revoke", "ci"], ("delete", "/api/v1/keys/ci", None), setup="key"),
    Case(
        "silence a task",
        ["notify", "silence", "nightly", "--until", UNTIL.isoformat(), "--reason", "migration"],
        ("post", "/api/v1/silences", {"match": {"task": "nightly"}, "until": UNTIL.isoformat(), "reason": "migration"}),
    ),
    Case("end a silence", ["notify", "unsilence", "1"], ("post", "/api/v1/silences/1/expire", None), setup="silence"),
]


def _prepare(store: Store, settings: Settings, setup: str) -> None:
    """The same starting point in either store, made through the application layer."""
    svc = Upkeep(settings, store, trusted=True)
    if setup == "none":
        return
    svc.create_task(
        {"name": "nightly", "type": "debug.sleep", "schedule": "0 3 * * *", "config": {"seconds": 1}}, actor="setup"
    )
    svc.create_task({"name": "idle", "type": "debug.noop", "enabled": False}, actor="setup")
    if setup == "run":
        svc.trigger("nightly", actor="setup")
    elif setup == "key":
        key_cases.create_key(svc, name="ci", role="operator", actor="setup")
    elif setup == "silence":
        alert_cases.create_silence(store, match={"task": "nightly"}, until=UNTIL, reason="migration", actor="setup")


def _through_cli(tmp_path: Path, monkeypatch, case: Case) -> dict:
    root = tmp_path / "cli"
    root.mkdir()
    store = Store(f"sqlite:///{root / 'upkeep.db'}")
    store.upgrade()
    (root / "upkeep.yaml").write_text("tasks: []\n")
    for key in list(os.environ):
        if key.startswith("UPKEEP_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("UPKEEP_CONFIG", str(root / "upkeep.yaml"))
    monkeypatch.setenv("UPKEEP_DATABASE_URL", store.url)
    monkeypatch.chdir(root)
    _prepare(store, Settings(config=root / "upkeep.yaml", database_url=store.url), case.setup)
    before = _rows(store)
    result = CliRunner().invoke(cli_app, case.cli)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    changes = _changes(before, _rows(store))
    store.dispose()
    return changes


def _through_api(tmp_path: Path, case: Case) -> dict:
    root = tmp_path / "api"
    root.mkdir()
    store = Store(f"sqlite:///{root / 'upkeep.db'}")
    store.upgrade()
    env = make_env(root, store)
    try:
        _prepare(store, env.settings, case.setup)
        before = _rows(store)
        method, path, body = case.api
        response = getattr(env, method)(path, **({"json": body} if body is not None else {}))
        assert response.status_code < 300, response.text
        return _changes(before, _rows(store))
    finally:
        env.client.close()
        store.dispose()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_cli_and_the_api_change_the_store_alike(tmp_path, monkeypatch, case):
    by_cli = _through_cli(tmp_path, monkeypatch, case)
    by_api = _through_api(tmp_path, case)
    assert by_cli, "the operation changed nothing"
    assert "audit_log" in by_cli  # every change is audited
    assert by_cli == by_api

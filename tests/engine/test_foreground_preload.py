"""``upkeep run``'s worker process starts before the run exists and imports what its handler preloads."""

from __future__ import annotations

import sys

import psutil

from upkeep.app import Upkeep
from upkeep.engine.foreground import ForegroundRunner
from upkeep.engine.registry import REGISTRY, handler
from upkeep.settings import Settings
from upkeep.store.db import Store

MODULE = "tabnanny"  # a module nothing else imports: in the worker only if it was preloaded


def test_a_foreground_worker_imports_what_the_handler_preloads_before_the_run_is_handed_to_it(tmp_path):
    assert MODULE not in sys.modules

    @handler("testing.preloaded", preload=[MODULE])
    def preloaded(ctx, config):
        return {"outcome": "ok", "summary": "looked", "preloaded": MODULE in sys.modules}

    settings = Settings(config=tmp_path / "upkeep.yaml")
    store = Store(settings.resolved_database_url)
    store.upgrade()
    runner = ForegroundRunner(settings, store, REGISTRY.get("testing.preloaded").preload)
    try:
        runner.prepare()  # forked now: the run below is created while it imports
        view = Upkeep(settings, store, trusted=True).create_adhoc_run(
            "testing.preloaded", {}, actor="test", reserved_by="test"
        )
        runner.execute(view["id"], poll=0.05)
        run = Upkeep(settings, store).get_run(view["id"])
        assert run["status"] == "completed" and run["result"]["preloaded"] is True, run
        assert MODULE not in sys.modules  # the worker imported it, not this process
    finally:
        runner.close()
        REGISTRY._handlers.pop("testing.preloaded", None)
        store.dispose()


def _fork_early(handler: str | None) -> int:
    """``engine.early.fork_worker``; the pid of the worker it forked (this process may hold others)."""
    import multiprocessing

    from upkeep.engine import early

    before = {p.pid for p in multiprocessing.active_children()}
    early.fork_worker(handler)
    (forked,) = {p.pid for p in multiprocessing.active_children() if p.name == "upkeep-worker"} - before
    return forked


def test_a_worker_forked_first_imports_the_named_handler_and_its_preload_and_then_runs_it(tmp_path):
    """``upkeep run`` forks its worker before it knows its config (``engine.early``): the worker
    imports what the handler it is named preloads by itself, and the runner adopts it."""
    assert MODULE not in sys.modules

    @handler("testing.preloaded", preload=[MODULE])
    def preloaded(ctx, config):
        ctx.info("looked", "looked at sys.modules")
        return {"outcome": "ok", "summary": "looked", "preloaded": MODULE in sys.modules}

    settings = Settings(config=tmp_path / "upkeep.yaml")
    store = Store(settings.resolved_database_url)
    store.upgrade()
    forked = _fork_early("testing.preloaded")
    runner = ForegroundRunner(settings, store)  # told nothing to preload: the early worker knew
    try:
        runner.prepare()
        view = Upkeep(settings, store, trusted=True).create_adhoc_run(
            "testing.preloaded", {}, actor="test", reserved_by="test"
        )
        runner.execute(view["id"], poll=0.05)
        service = Upkeep(settings, store)
        run = service.get_run(view["id"])
        assert run["status"] == "completed" and run["result"]["preloaded"] is True, run
        assert run["worker"].endswith(f":{forked}")  # the early worker ran it, none forked later
        events = [e["event"] for e in service.run_events(view["id"])]
        assert events[0] == "started" and "looked" in events and events[-1] == "finished"
        assert MODULE not in sys.modules
    finally:
        runner.close()
        REGISTRY._handlers.pop("testing.preloaded", None)
        store.dispose()
    assert not psutil.pid_exists(forked) or psutil.Process(forked).status() == psutil.STATUS_ZOMBIE


def test_a_worker_forked_first_ends_when_its_command_closes_its_pipe():
    from upkeep.engine import early

    _fork_early(None)
    process, conn, _ = early.take()
    assert process.is_alive() and early.take() is None  # adopted once
    conn.close()  # as the command's exit closes it
    process.join(30)
    assert process.exitcode == 0


def test_a_worker_forked_first_and_never_adopted_is_ended_at_exit():
    import multiprocessing

    from upkeep.engine import early

    forked = _fork_early(None)
    early.discard()  # the command's exit handler
    assert forked not in [p.pid for p in multiprocessing.active_children()]
    assert early.take() is None


def test_a_preload_may_call_a_function_of_its_module_and_what_fails_to_preload_is_left_to_the_run(
    tmp_path, monkeypatch
):
    (tmp_path / "preload_probe.py").write_text("marked = False\n\ndef mark():\n    global marked\n    marked = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # the worker is forked: it has this path too

    @handler("testing.probed", preload=["no_such_module_at_all", "preload_probe:missing", "preload_probe:mark"])
    def probed(ctx, config):
        probe = sys.modules.get("preload_probe")
        return {"outcome": "ok", "summary": "probed", "marked": bool(probe and probe.marked)}

    settings = Settings(config=tmp_path / "upkeep.yaml")
    store = Store(settings.resolved_database_url)
    store.upgrade()
    runner = ForegroundRunner(settings, store, REGISTRY.get("testing.probed").preload)
    try:
        runner.prepare()
        view = Upkeep(settings, store, trusted=True).create_adhoc_run(
            "testing.probed", {}, actor="test", reserved_by="test"
        )
        runner.execute(view["id"], poll=0.05)
        run = Upkeep(settings, store).get_run(view["id"])
        assert run["status"] == "completed" and run["result"]["marked"] is True, run
        assert "preload_probe" not in sys.modules
    finally:
        runner.close()
        REGISTRY._handlers.pop("testing.probed", None)
        store.dispose()

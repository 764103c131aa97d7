"""``upkeep run``'s worker process starts before the run exists and imports what its handler preloads."""

from __future__ import annotations

import sys

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

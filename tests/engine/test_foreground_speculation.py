"""``upkeep run``'s early worker starts a handler that opts in from the command line
(``engine.speculate``); the foreground runner keeps its result only for the run it started."""

from __future__ import annotations

import os
import tempfile
import time

import psutil
import pytest

from support.polling import eventually
from upkeep.app import Upkeep
from upkeep.engine import early
from upkeep.engine.foreground import ForegroundRunner
from upkeep.engine.registry import REGISTRY, HandlerConfig, handler
from upkeep.settings import Settings
from upkeep.store.db import Store


class WordConfig(HandlerConfig):
    word: str = "x"
    nap: float = 0.0


@pytest.fixture
def calls(tmp_path):
    """The handler ``testing.spoken``, which notes each call (pid, word) in a file; the calls."""
    path = tmp_path / "calls.txt"
    path.touch()

    @handler("testing.spoken", config=WordConfig, speculative=True)
    def spoken(ctx, config):
        with path.open("a") as f:
            f.write(f"{os.getpid()} {config.word}\n")
        ctx.info("spoke", f"said {config.word}")
        if ctx.cancel_event.wait(config.nap):  # a nap a cancel ends, as a handler that checks
            ctx.check_cancelled()
        return {"outcome": "ok", "summary": config.word}

    yield lambda: [line.split() for line in path.read_text().splitlines()]
    REGISTRY._handlers.pop("testing.spoken", None)


@pytest.fixture
def service(tmp_path):
    settings = Settings(config=tmp_path / "upkeep.yaml")
    store = Store(settings.resolved_database_url)
    store.upgrade()
    yield settings, store
    store.dispose()


def _speculate(config: dict) -> None:
    """Fork the worker and send it the command line's config, as ``upkeep run`` does."""
    early.fork_worker("testing.spoken", speculation_follows=True)
    early.speculate_with({"config": config, "dry_run": False, "confirm": False})


def _fork(word: str) -> int:
    _speculate({"word": word})
    return early._early.process.pid


def _run(service, word: str) -> tuple[dict, list[str]]:
    settings, store = service
    runner = ForegroundRunner(settings, store)
    try:
        runner.prepare()  # adopts the early worker
        view = Upkeep(settings, store, trusted=True).create_adhoc_run(
            "testing.spoken", {"word": word}, actor="test", reserved_by="test"
        )
        runner.execute(view["id"], poll=0.05)
    finally:
        runner.close()
    app = Upkeep(settings, store)
    return app.get_run(view["id"]), [e["event"] for e in app.run_events(view["id"])]


def test_the_run_the_early_worker_started_is_recorded_with_its_result_and_not_run_twice(service, calls):
    forked = _fork("hello")
    run, events = _run(service, "hello")
    assert (run["status"], run["summary"]) == ("completed", "hello"), run
    assert calls() == [[str(forked), "hello"]]  # once, in the early worker
    assert run["worker"].endswith(f":{forked}")
    assert events == ["started", "spoke", "finished"]
    assert not psutil.pid_exists(forked) or psutil.Process(forked).status() == psutil.STATUS_ZOMBIE


def test_a_run_whose_config_differs_from_the_command_lines_is_executed_again_with_its_own(service, calls):
    forked = _fork("hello")
    run, events = _run(service, "goodbye")
    assert (run["status"], run["summary"]) == ("completed", "goodbye"), run
    assert calls() == [[str(forked), "hello"], [str(forked), "goodbye"]]  # the speculation thrown away
    assert events == ["started", "spoke", "finished"]  # nothing of the speculation recorded


def test_a_speculating_worker_nobody_adopted_ends_at_exit_and_leaves_no_temporary_files(tmp_path, calls, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the worker's scratch directory goes here
    _speculate({"word": "slow", "nap": 30})
    process = early._early.process
    deadline = time.monotonic() + 30
    while not calls() and time.monotonic() < deadline:  # the handler is running
        time.sleep(0.02)
    assert calls() and list(tmp_path.glob("upkeep-worker-*"))
    early.discard()  # the command failed before any run existed
    assert process.exitcode == 0  # ended by itself, its handler still asleep
    assert list(tmp_path.glob("upkeep-worker-*")) == []


def test_an_early_worker_whose_run_was_taken_first_serves_the_next_run_as_any_worker(service, calls):
    settings, store = service
    forked = _fork("hello")
    app = Upkeep(settings, store, trusted=True)
    runner = ForegroundRunner(settings, store)
    try:
        runner.prepare()
        first = app.create_adhoc_run("testing.spoken", {"word": "hello"}, actor="test", reserved_by="test")
        app.cancel_run(first["id"], actor="test")  # gone before the command claims it
        runner.execute(first["id"], poll=0.05)
        second = app.create_adhoc_run("testing.spoken", {"word": "hello"}, actor="test", reserved_by="test")
        runner.execute(second["id"], poll=0.05)
    finally:
        runner.close()
    assert app.get_run(first["id"])["status"] == "cancelled"
    run = app.get_run(second["id"])
    assert (run["status"], run["summary"]) == ("completed", "hello"), run
    assert run["worker"].endswith(f":{forked}")
    assert len(calls()) == 2  # the speculation was for the first run: the second ran for itself


def test_a_command_line_the_handler_refuses_leaves_the_run_to_execute_with_its_own_config(service, calls):
    _speculate({"nap": "soon"})
    forked = early._early.process.pid
    run, events = _run(service, "hello")
    assert (run["status"], run["summary"]) == ("completed", "hello"), run
    assert calls() == [[str(forked), "hello"]]  # nothing started before the run


@pytest.mark.parametrize("cancel_first", [True, False], ids=["before-speculated", "before-start"])
def test_a_cancel_the_early_worker_gets_before_it_serves_the_run_reaches_the_runs_handler(service, calls, cancel_first):
    base, store = service
    grace = 60.0  # when the watcher kills a run whose handler has not ended on its cancel
    settings = Settings(config=base.config, cancel_grace_seconds=grace)
    app = Upkeep(settings, store, trusted=True)
    forked = _fork("hello")
    runner = ForegroundRunner(settings, store)
    send = runner._send

    def cancel_as_it_is_answered(slot, message):
        if message[0] != "speculated":
            return send(slot, message)
        # the run is claimed and watched: its cancel is requested and the watcher passes it on at
        # once, before the worker has the run or while it answers it ("unmatched": not its speculation)
        if not cancel_first:
            send(slot, message)
        app.cancel_run(message[1]["id"], actor="test")
        runner.watcher.check()
        if cancel_first:
            send(slot, message)

    runner._send = cancel_as_it_is_answered
    try:
        runner.prepare()
        config = {"word": "goodbye", "nap": 3600}  # not the command line's: the worker serves it
        view = app.create_adhoc_run("testing.spoken", config, actor="test", reserved_by="test")
        began = time.monotonic()
        runner.execute(view["id"], poll=0.05)
        took = time.monotonic() - began
    finally:
        runner.close()
    run = app.get_run(view["id"])
    # the handler's own cancel, not the watcher's kill (``watch.CANCELLED_ERROR``) after the grace
    assert (run["status"], run["error"]) == ("cancelled", "cancelled on request"), run
    assert took < grace
    assert calls() == [[str(forked), "hello"], [str(forked), "goodbye"]]  # served by the early worker


@pytest.mark.parametrize("speculation", ["hello", None], ids=["told-a-speculation", "told-none"])
def test_a_worker_forked_before_the_command_line_is_parsed_starts_only_what_it_is_then_told(
    service, calls, speculation
):
    """``upkeep run`` forks its worker before it parses ``--set`` (``app.foreground.fork_worker_early``)
    and sends the speculation once parsed; told None, the worker starts nothing and serves the run."""
    early.fork_worker("testing.spoken", speculation_follows=True)
    forked = early._early.process.pid
    time.sleep(0.2)  # the parse: the worker waits for it, having imported what the handler preloads
    assert calls() == []
    told = {"config": {"word": speculation}, "dry_run": False, "confirm": False} if speculation else None
    early.speculate_with(told)
    assert early._early.speculating is (speculation is not None)
    if speculation:  # started before any run exists
        eventually(lambda: calls() == [[str(forked), "hello"]], "the handler started from the speculation")
    else:
        time.sleep(0.2)
        assert calls() == []
    run, events = _run(service, "hello")
    assert (run["status"], run["summary"]) == ("completed", "hello"), run
    assert run["worker"].endswith(f":{forked}")
    assert calls() == [[str(forked), "hello"]]  # once: the speculation's result, or the run's own call
    assert events == ["started", "spoke", "finished"]

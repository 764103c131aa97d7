"""A read-only handler started from ``upkeep run``'s command line before its run exists
(``engine.speculate``): its result is the run's only when the run is the one it started."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from pydantic import Field

from upkeep.engine import speculate
from upkeep.engine.registry import HandlerConfig, Registry, handler
from upkeep.secrets import REDACTED


class CountConfig(HandlerConfig):
    word: str = "x"
    times: int = Field(1, ge=1)


def _registry(calls: list[str], gate: threading.Event | None = None) -> Registry:
    registry = Registry()
    registry._loaded = True  # only these handlers: nothing to load

    @handler("testing.count", config=CountConfig, speculative=True, aliases=["testing.tally"], registry=registry)
    def count(ctx, config):
        calls.append(config.word)
        ctx.info("counting", f"counting {config.word}", secret_word=config.word)
        if gate is not None:
            gate.wait(10)
        ctx.check_cancelled()
        if config.word == "boom":
            raise RuntimeError("it broke")
        return {"outcome": "ok", "summary": config.word * config.times, "at": ctx.now()}

    @handler("testing.inventory", speculative=True, registry=registry)
    def inventory(ctx, config):
        return {"outcome": "ok", "summary": ", ".join(ctx.targets.names("logs"))}

    @handler("testing.once", config=CountConfig, speculative=lambda config: config.times == 1, registry=registry)
    def once(ctx, config):
        calls.append(f"once {config.word}")
        return {"outcome": "ok"}

    @handler("testing.plain", registry=registry)
    def plain(ctx, config):
        return {"outcome": "ok"}

    return registry


def _claimed(config, *, task_type="testing.count", task_name=None, dry_run=False, requested=None, started=None):
    return {
        "id": 7,
        "task_id": None,
        "task_name": task_name,
        "task_type": task_type,
        "requested_type": requested,
        "config": config,
        "dry_run": dry_run,
        "confirm": False,
        "attempt": 1,
        "timeout_seconds": None,
        "started_at": started or datetime.now(UTC),
        "deadline_at": None,
        "parent_run_id": None,
    }


def _finished(started) -> None:
    assert started._done.wait(10)


def test_the_speculation_is_the_runs_result_when_the_runs_resolved_config_is_the_same():
    calls: list[str] = []
    config = {"word": "abcd", "times": 2}
    started = speculate.start("testing.count", config, dry_run=False, confirm=False, registry=_registry(calls))
    _finished(started)
    later = datetime.now(UTC) + timedelta(seconds=5)
    claimed = _claimed({"times": 2, "word": "abcd"}, started=later)  # the same config, as the run stores it
    collected = ["abcd"]  # a secret of the instance: scrubbed from what the run records
    assert started.matches(claimed, collected)
    ending = started.ending(claimed, collected)
    assert calls == ["abcd"]  # called once, before the run existed
    assert ending["status"] == "completed" and ending["outcome"] == "ok"
    assert ending["summary"] == REDACTED * 2
    (event,) = ending["events"]
    assert event["event"] == "counting" and "abcd" not in event["message"] and "abcd" not in str(event["data"])
    assert datetime.fromisoformat(event["ts"]) >= later  # no event of the run before its start


def test_a_run_whose_config_flags_or_name_differ_is_not_the_speculation():
    calls: list[str] = []
    registry = _registry(calls)
    started = speculate.start("testing.count", {"word": "ab"}, dry_run=False, confirm=False, registry=registry)
    _finished(started)
    assert started.matches(_claimed({"word": "ab", "times": 1}), [])  # a default spelled out is the same
    assert not started.matches(_claimed({"word": "ba"}), [])
    assert not started.matches(_claimed({"word": "ab", "times": 2}), [])
    assert not started.matches(_claimed({"word": "ab"}, dry_run=True), [])
    assert not started.matches(_claimed({"word": "ab", "dry_run": True}), [])
    assert not started.matches(_claimed({"word": "ab"}, task_name="a-task"), [])  # a task's run
    assert not started.matches(_claimed({"word": "ab"}, requested="testing.tally"), [])
    assert not started.matches(_claimed({"word": "ab"}, task_type="testing.plain"), [])
    assert not started.matches(_claimed({"word": "ab", "times": 0}), [])  # invalid: the run says why


def test_only_a_handler_that_opts_in_and_a_valid_command_line_start_a_speculation():
    calls: list[str] = []
    registry = _registry(calls)
    assert speculate.start("testing.plain", {}, dry_run=False, confirm=False, registry=registry) is None
    assert speculate.start("testing.count", {"times": 0}, dry_run=False, confirm=False, registry=registry) is None
    assert speculate.start("testing.count", {"nope": 1}, dry_run=False, confirm=False, registry=registry) is None
    assert speculate.start("no.such", {}, dry_run=False, confirm=False, registry=registry) is None
    # for the configs it says it may be started from only
    assert not speculate.wanted("testing.once", {"times": 2}, registry=registry)
    assert speculate.start("testing.once", {"times": 2}, dry_run=False, confirm=False, registry=registry) is None
    assert calls == []
    assert speculate.wanted("testing.once", {"times": 1}, registry=registry)
    _finished(speculate.start("testing.once", {}, dry_run=False, confirm=False, registry=registry))
    assert calls == ["once x"]
    by_alias = speculate.start("testing.tally", {}, dry_run=False, confirm=False, registry=registry)
    _finished(by_alias)
    assert by_alias.matches(_claimed({}, requested="testing.tally"), [])


def test_a_handler_that_asks_for_what_only_a_run_has_leaves_the_run_to_execute_as_any():
    started = speculate.start("testing.inventory", {}, dry_run=False, confirm=False, registry=_registry([]))
    _finished(started)
    claimed = _claimed({}, task_type="testing.inventory")
    assert started.matches(claimed, [])
    assert started.ending(claimed, []) is None


def test_what_the_speculation_raised_or_a_cancel_ends_the_run_as_it_would_have():
    registry = _registry([])
    broken = speculate.start("testing.count", {"word": "boom"}, dry_run=False, confirm=False, registry=registry)
    _finished(broken)
    ending = broken.ending(_claimed({"word": "boom"}), [])
    assert ending["status"] == "failed" and ending["error"] == "RuntimeError: it broke"
    assert [e["event"] for e in ending["events"]] == ["counting", "exception"]

    gate = threading.Event()
    waiting = speculate.start("testing.count", {}, dry_run=False, confirm=False, registry=_registry([], gate))
    waiting.cancel()  # the run's cancel request, while the handler still works
    gate.set()
    _finished(waiting)
    assert waiting.ending(_claimed({}), [])["status"] == "cancelled"

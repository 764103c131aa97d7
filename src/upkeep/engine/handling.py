"""Calling a handler and turning how it ended into a run's end, without the store.

``engine.execute.call_handler`` (a worker with the store) and ``engine.speculate`` (``upkeep run``'s
worker before it has one) share it: one resolution of a run's config, one reading of what a
handler's return or exception means for the run, one scrubbing of secrets.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from upkeep import secrets as secret_refs
from upkeep.engine.context import (
    CommandFailed,
    DeadlineExceeded,
    Journal,
    RunCancelled,
    RunContext,
    WaitRequested,
    _scrub_data,
)
from upkeep.engine.registry import HandlerSpec
from upkeep.errors import UserError
from upkeep.store.states import CANCELLED, COMPLETED, FAILED, OUTCOMES, TIMED_OUT, WAITING

log = logging.getLogger(__name__)


def resolve_config(spec: HandlerSpec, raw: dict[str, Any] | None, collected: list[str]) -> tuple[BaseModel, dict]:
    """A run's stored config as its handler gets it (secret references resolved into ``collected``,
    validated by the model), and its per-run flags (``dry_run``)."""
    raw_config, flags = spec.split_run_flags(raw)
    resolved = secret_refs.resolve(raw_config, collected=collected)
    return spec.validate_config(resolved), flags


def invoke(spec: HandlerSpec, ctx: RunContext, model: BaseModel) -> dict | None:
    """The handler's call itself."""
    if ctx.dry_run:
        ctx.info("dry_run", "dry run: nothing will be changed")
    return spec.func(ctx, model)


@dataclass(frozen=True)
class Ending:
    """How a handler's call ended, secrets scrubbed: the fields of ``lifecycle.Finish`` but the run's
    id and its events."""

    status: str
    outcome: str | None
    result: dict | None
    summary: str | None
    error: str | None
    finished_at: datetime


def ending_of(call: Callable[[], dict | None], journal: Journal, run_id: int, collected: list[str]) -> Ending:
    """Call ``call`` (the handler with its context) and read how it ended: completed with the
    outcome it returned, waiting, cancelled, timed out or failed. A crash's traceback is logged to
    ``journal`` as an ``exception`` event."""
    status, outcome, result, summary, error = FAILED, None, None, None, None
    try:
        returned = call()
        result = _jsonable(dict(returned or {}))
        outcome = str(result.get("outcome") or "ok")
        if outcome not in OUTCOMES:
            raise ValueError(f"handler returned outcome {outcome!r}; expected one of {OUTCOMES}")
        result["outcome"] = outcome
        summary = result.get("summary")
        status = COMPLETED
    except WaitRequested as exc:  # the lifecycle parks the run without a worker
        status, summary, result = WAITING, exc.reason, exc.result
    except RunCancelled:
        status, error = CANCELLED, "cancelled on request"
    except DeadlineExceeded as exc:
        status, error = TIMED_OUT, str(exc)
    except UserError as exc:
        # bad input, config or an unreachable server: the operator must fix something (CLI exit 2)
        status, error = FAILED, str(exc)
        result = {"error_kind": "user", "error_type": type(exc).__name__}
    except CommandFailed as exc:
        status, error = FAILED, str(exc)
    except Exception as exc:
        status, error = FAILED, f"{type(exc).__name__}: {exc}"
        try:
            journal.event(run_id, "error", "exception", error, {"traceback": traceback.format_exc(limit=20)})
        except Exception:
            log.exception("could not record the exception of run %s", run_id)
    if result is not None:  # always: a password inside a URL is masked even with no secret known
        result = _scrub_data(result, collected)
    if error:
        error = secret_refs.scrub(error, collected)
    if summary:
        summary = secret_refs.scrub(str(summary), collected)
    return Ending(status, outcome, result, summary, error, datetime.now(UTC))


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))

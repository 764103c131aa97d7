"""``procedure.execute``: ordered steps, each a handler type with its own config, in one run.

A step may instead be an approval, ``{approve: {role: admin, timeout: 1h, message: ...}}``: the
run asks for it (``upkeep.people.approvals``), saving the steps done so far, and gives its worker
back (``WaitRequested``: the run is ``waiting``). Once a person approves, the run is executed again
and goes on at the next step, which gets the run's ``confirm``; a rejection or the timeout cancels
the run. A dry run does not wait: it says it would ask and goes on.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from upkeep.engine.context import RunContext, WaitRequested
from upkeep.engine.hostscope import CONFIG_OF
from upkeep.engine.registry import REGISTRY, HandlerConfig, handler
from upkeep.errors import ConfigError, UserError
from upkeep.handlers.findings import worst_of

MAX_APPROVAL_SECONDS = 30 * 86400


class Approve(BaseModel):
    """Wait for a person to approve before the next step."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["viewer", "operator", "admin"] = Field("admin", description="The least role that may decide")
    timeout: str = Field("24h", description="Cancel the run when nobody approved within this, e.g. 1h (at most 30d)")
    message: str = Field("", max_length=2000, description="What the person is asked to check before approving")
    channels: list[str] | None = Field(None, description="Alert channels told of the request (default: the task's)")

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str) -> str:
        from upkeep.engine.taskspec import parse_duration

        if not 5 <= parse_duration(value) <= MAX_APPROVAL_SECONDS:
            raise ValueError("must be at least 5s and at most 30d, e.g. 1h")
        return value


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(None, description="Handler of this step, domain.action (or approve:)")
    approve: Approve | None = Field(None, description="Instead of a handler: wait for a person's approval")
    name: str | None = Field(None, description="Label used in events (default: the type)")
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="The step handler's config (its host-scoped fields stay host-scoped here)",
        json_schema_extra={CONFIG_OF: "type"},
    )
    continue_on_failure: bool | None = Field(None, description="Override the procedure's stop_on_failure")

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        if (self.type is None) == (self.approve is None):
            raise ValueError("a step has either type (a handler) or approve (a person's approval)")
        return self


class ProcedureConfig(HandlerConfig):
    steps: list[Step] = Field(min_length=1, description="Executed in order")
    stop_on_failure: bool = Field(True, description="Stop at the first failing step")


def _validate_steps(config: ProcedureConfig) -> list[tuple[Step, Any, Any]]:
    out = []
    for index, step in enumerate(config.steps, 1):
        if step.approve is not None:
            out.append((step, None, None))
            continue
        spec = REGISTRY.get(step.type)
        if spec.name == "procedure.execute":
            raise ConfigError(f"steps.{index}: a procedure cannot contain a procedure")
        out.append((step, spec, spec.validate_config(step.config)))
    return out


class _StepJournal:
    def __init__(self, journal, step: str):
        self.journal, self.step = journal, step

    def event(self, run_id, level, event, message, data):
        self.journal.event(run_id, level, event, f"[{self.step}] {message}", {**(data or {}), "step": self.step})

    def __getattr__(self, name):
        return getattr(self.journal, name)


@handler("procedure.execute", config=ProcedureConfig, destructive=True)
def execute(ctx: RunContext, config: ProcedureConfig) -> dict:
    """Run ordered steps; stop or continue on failure; the outcome is the worst step's outcome."""
    steps = _validate_steps(config)
    progress = _resumed(ctx)
    results, worst, failed = progress["results"], progress["worst"], progress["failed"]
    confirm_next = progress["next"] > 0  # an approval just given: the step after it is confirmed
    for index, (step, spec, model) in enumerate(steps):
        if index < progress["next"]:
            continue
        ctx.check_cancelled()
        number = index + 1
        label = step.name or (f"{number}:approve" if spec is None else f"{number}:{spec.name}")
        ctx.progress(index / len(steps), f"step {number}/{len(steps)}: {label}")
        if step.approve is not None:
            if ctx.dry_run:
                ctx.info("approval_skipped", f"step {label}: dry run, would wait for an {step.approve.role}'s approval")
                continue
            saved = {"next": number, "results": results, "worst": worst, "failed": failed}
            _ask(ctx, step.approve, index, label, saved)
        step_ctx = dataclasses.replace(
            ctx,
            journal=_StepJournal(ctx.journal, label),
            task_type=spec.name,
            confirm=ctx.confirm or confirm_next,
        )
        confirm_next = False
        ctx.info("step_start", f"step {label} ({spec.name})", step=label)
        try:
            result = dict(spec.func(step_ctx, model) or {})
            outcome = result.get("outcome", "ok")
            worst = worst_of([worst, outcome])
            results.append(
                {
                    "step": label,
                    "type": spec.name,
                    "status": "completed",
                    "outcome": outcome,
                    "summary": result.get("summary"),
                }
            )
            ctx.info("step_end", f"step {label}: {outcome}", step=label, outcome=outcome)
        except Exception as exc:
            failed += 1
            results.append({"step": label, "type": spec.name, "status": "failed", "error": str(exc)})
            ctx.error("step_failed", f"step {label} failed: {exc}", step=label)
            stop = config.stop_on_failure if step.continue_on_failure is None else not step.continue_on_failure
            if stop:
                raise UserError(f"step {label} failed: {exc}") from None
    outcome = "critical" if failed and worst != "critical" else worst
    if failed and outcome == "ok":
        outcome = "warning"
    return {
        "steps": results,
        "outcome": outcome,
        "summary": f"{len(results)} step(s), {failed} failed, outcome {outcome}",
    }


def _resumed(ctx: RunContext) -> dict[str, Any]:
    """Where this run stands: at the start, or after the last approval given (with the steps done)."""
    given = [a for a in ctx.services.approvals_of(ctx.run_id).values() if a["status"] == "approved"]
    if not given:
        return {"next": 0, "results": [], "worst": "ok", "failed": 0}
    last = max(given, key=lambda a: a["step"])
    ctx.info("resumed", f"step {last['step_name']} approved by {last['decided_by']}; going on", step=last["step"])
    results = [*last["progress"]["results"], _approval_result(last)]
    return {**last["progress"], "results": results}


def _approval_result(approval: dict[str, Any]) -> dict[str, Any]:
    return {
        "step": approval["step_name"],
        "type": "approve",
        "status": "completed",
        "outcome": "ok",
        "summary": f"approved by {approval['decided_by']} at {approval['decided_at']}",
    }


def _ask(ctx: RunContext, approve: Approve, index: int, label: str, saved: dict[str, Any]) -> None:
    """Ask for the approval of this step (once) and give the worker back until it is decided."""
    from upkeep.engine.taskspec import parse_duration

    approval, failed = ctx.services.request_approval(
        run_id=ctx.run_id,
        task_name=ctx.task_name,
        step=index,
        step_name=label,
        role=approve.role,
        timeout_seconds=parse_duration(approve.timeout),
        message=approve.message,
        progress=saved,
        channels=approve.channels,
    )
    for problem in failed:
        ctx.warning("notify_failed", f"could not tell a channel of approval {approval['id']}: {problem}")
    reason = f"waiting for an {approve.role}'s approval of step {label} (approval {approval['id']})"
    ctx.info("approval_requested", reason, approval_id=approval["id"], expires_at=approval["expires_at"])
    raise WaitRequested(reason, {"steps": saved["results"], "approval_id": approval["id"]})

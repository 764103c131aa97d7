"""``procedure.execute``: ordered steps, each a handler type with its own config, in one run."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from upkeep.engine.context import RunContext
from upkeep.engine.hostscope import CONFIG_OF
from upkeep.engine.registry import REGISTRY, HandlerConfig, handler
from upkeep.errors import ConfigError, UserError

RANK = {"ok": 0, "warning": 1, "critical": 2}


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="Handler of this step, domain.action")
    name: str | None = Field(None, description="Label used in events (default: the type)")
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="The step handler's config (its host-scoped fields stay host-scoped here)",
        json_schema_extra={CONFIG_OF: "type"},
    )
    continue_on_failure: bool | None = Field(None, description="Override the procedure's stop_on_failure")


class ProcedureConfig(HandlerConfig):
    steps: list[Step] = Field(min_length=1, description="Executed in order")
    stop_on_failure: bool = Field(True, description="Stop at the first failing step")


def _validate_steps(config: ProcedureConfig) -> list[tuple[Step, Any, Any]]:
    out = []
    for index, step in enumerate(config.steps, 1):
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
    results = []
    worst = "ok"
    failed = 0
    for index, (step, spec, model) in enumerate(steps, 1):
        ctx.check_cancelled()
        label = step.name or f"{index}:{spec.name}"
        ctx.progress((index - 1) / len(steps), f"step {index}/{len(steps)}: {label}")
        step_ctx = dataclasses.replace(ctx, journal=_StepJournal(ctx.journal, label), task_type=spec.name)
        ctx.info("step_start", f"step {label} ({spec.name})", step=label)
        try:
            result = dict(spec.func(step_ctx, model) or {})
            outcome = result.get("outcome", "ok")
            worst = max(worst, outcome, key=RANK.get)
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

"""``shell.run``: run a command. Command tasks can only be defined in the config file, and a run
may not override their command (no field of this model is overridable)."""

from __future__ import annotations

from pydantic import Field, model_validator

from upkeep.bounds import MAX_TIMEOUT_SECONDS
from upkeep.engine.context import CommandFailed, RunContext
from upkeep.engine.registry import HandlerConfig, handler, host_scoped


class ShellConfig(HandlerConfig):
    command: list[str] | str = host_scoped(description="argv list; a string only with shell: true")
    shell: bool = Field(False, description="Run `command` through /bin/sh -c")
    cwd: str | None = host_scoped(None, description="Working directory")
    env: dict[str, str] = host_scoped(default_factory=dict, description="Extra environment (values may be ${env:X})")
    user: str | None = host_scoped(None, description="Run as this user (upkeep must run as root)")
    timeout_seconds: float | None = Field(
        None, gt=0, le=MAX_TIMEOUT_SECONDS, description="Kill the command after this long"
    )
    tail_lines: int = Field(40, ge=0, le=1000, description="Output lines kept in the run's events")

    @model_validator(mode="after")
    def _command_shape(self) -> ShellConfig:
        if isinstance(self.command, str) and not self.shell:
            raise ValueError("command is a string: give an argv list, or set shell: true")
        if isinstance(self.command, list) and not self.command:
            raise ValueError("command is empty")
        return self


@handler("shell.run", config=ShellConfig, destructive=True)
def run(ctx: RunContext, config: ShellConfig) -> dict:
    """Run a command under the run's deadline; a non-zero exit fails the run.

    The output's last lines are kept as events. At the deadline the whole process tree is killed.
    """
    shown = config.command if isinstance(config.command, str) else " ".join(config.command)
    if ctx.dry_run:
        ctx.info("plan", f"would run: {shown}", command=config.command, cwd=config.cwd, user=config.user)
        return {"dry_run": True, "planned": [shown], "summary": f"would run {shown}"}
    ctx.info("exec", f"running: {shown}", cwd=config.cwd, user=config.user)
    try:
        result = ctx.run_command(
            config.command,
            shell=config.shell,
            cwd=config.cwd,
            env=config.env or None,
            user=config.user,
            timeout=config.timeout_seconds,
            check=False,
        )
    except CommandFailed:
        raise
    tail = result.tail(config.tail_lines)
    if tail:
        ctx.info("output", tail, lines=len(tail.splitlines()))
    if result.returncode != 0:
        raise CommandFailed(f"{shown} exited with {result.returncode}" + (f": {result.tail(3)}" if tail else ""))
    return {
        "returncode": 0,
        "duration_seconds": round(result.duration, 3),
        "output_tail": tail,
        "summary": f"{shown} exited 0 in {result.duration:.1f}s",
    }

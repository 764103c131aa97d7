"""``upkeep runs list|show|logs [--follow]|cancel``."""

from __future__ import annotations

import time

import typer

from upkeep.cli.common import actor, duration, echo, print_json, short_time, state, table
from upkeep.cli.run import TERMINAL, format_event, format_result

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    task: str = typer.Option(None, "--task", help="Only runs of this task"),
    status: str = typer.Option(None, "--status", help="Only runs with this status"),
    outcome: str = typer.Option(None, "--outcome", help="Only runs with this outcome"),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=1000, help="How many (newest first)"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """List recent runs, newest first."""
    runs, total = state(ctx).service.list_runs(task=task, status=status, outcome=outcome, limit=limit)
    if as_json:
        print_json({"total": total, "runs": runs})
        return
    table(
        ["id", "task", "origin", "status", "outcome", "created (UTC)", "duration", "summary"],
        [
            [
                r["id"],
                r["task_name"] or r["task_type"],
                r["origin"],
                r["status"],
                r["outcome"] or "",
                short_time(r["created_at"]),
                duration(r["duration_seconds"]),
                (r["summary"] or r["error"] or "")[:120],
            ]
            for r in runs
        ],
    )
    echo(f"{len(runs)} of {total} run(s)")


@app.command("show")
def show(
    ctx: typer.Context,
    run_id: int = typer.Argument(..., help="Run id"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Show a run: status, outcome, timing, config and result."""
    import yaml

    view = state(ctx).service.get_run(run_id)
    if as_json:
        print_json(view)
        return
    for key in (
        "id",
        "task_name",
        "task_type",
        "origin",
        "status",
        "outcome",
        "attempt",
        "dry_run",
        "created_at",
        "started_at",
        "finished_at",
        "worker",
        "summary",
        "error",
    ):
        value = view.get(key)
        if value not in (None, ""):
            echo(f"{key + ':':<14}{value}")
    if view.get("duration_seconds") is not None:
        echo(f"{'duration:':<14}{duration(view['duration_seconds'])}")
    for key in ("config", "result"):
        if view.get(key):
            echo(f"{key}:")
            for line in yaml.safe_dump(view[key], sort_keys=False, allow_unicode=True).rstrip().splitlines():
                echo(f"  {line}")


@app.command("logs")
def logs(
    ctx: typer.Context,
    run_id: int = typer.Argument(..., help="Run id"),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until the run ends"),
    as_json: bool = typer.Option(False, "--json", help="Print the events as JSON"),
) -> None:
    """Print a run's events (with --follow, until it ends)."""
    service = state(ctx).service
    seq = 0
    collected: list[dict] = []

    def emit() -> None:
        nonlocal seq
        for event in service.run_events(run_id, after=seq):
            seq = event["seq"]
            if as_json:
                collected.append(event)
            else:
                echo(format_event(event))

    while True:
        view = service.get_run(run_id)
        emit()
        if not follow or view["status"] in TERMINAL:
            emit()  # events written while it finished
            break
        time.sleep(0.3)
    if as_json:
        print_json(collected)
    elif follow:
        echo(format_result(view))


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    run_id: int = typer.Argument(..., help="Run id"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Cancel a run: pending runs end at once; a running one is asked, then killed after a grace period."""
    view = state(ctx).service.cancel_run(run_id, actor=actor())
    if as_json:
        print_json(view)
    else:
        echo(f"run {run_id}: {view['status']}{' (cancel requested)' if view['cancel_requested'] else ''}")

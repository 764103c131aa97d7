"""``upkeep tasks list|show|create|enable|disable|set|trigger|delete`` (through the application layer)."""

from __future__ import annotations

from typing import Any

import typer

from upkeep.cli.common import (
    actor,
    confirm_or_fail,
    echo,
    parse_assignments,
    print_json,
    short_time,
    state,
    table,
)

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    tier: str = typer.Option(None, "--tier", help="Only tasks of this tier"),
    task_type: str = typer.Option(None, "--type", help="Only tasks of this handler type"),
    enabled: bool = typer.Option(None, "--enabled/--disabled", help="Only enabled / disabled tasks"),
    search: str = typer.Option(None, "--search", help="Name contains"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """List tasks."""
    from upkeep.app.task_list import list_tasks  # not the use cases that write: no ORM, no lifecycle

    store = state(ctx).store()
    # the table shows no schedule in words: only JSON pays for explaining them
    tasks, total = list_tasks(store, enabled=enabled, tier=tier, task_type=task_type, search=search, explain=as_json)
    if as_json:
        print_json({"total": total, "tasks": tasks})
        return
    table(
        ["name", "type", "schedule", "enabled", "tiers", "next run (UTC)", "last", "by"],
        [
            [
                t["name"],
                t["type"],
                t["schedule"] or "manual",
                "yes" if t["enabled"] else "no",
                ",".join(t["tiers"]),
                short_time(t["next_run_at"]),
                " ".join(x for x in (t["last_status"], t["last_outcome"]) if x),
                t["managed_by"],
            ]
            for t in tasks
        ],
    )
    echo(f"{total} task(s)")


@app.command("show")
def show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Task name or id"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Show a task: its schedule in words, next times, config, last run and drift."""
    task = state(ctx).service.get_task(name)
    if as_json:
        print_json(task)
        return
    _print_task(task)


def _print_task(task: dict[str, Any]) -> None:
    import yaml

    rows = [
        ("name", task["name"]),
        ("type", task["type"]),
        ("description", task["description"]),
        ("schedule", f"{task['schedule'] or 'manual only'} ({task['timezone']}): {task['schedule_text']}"),
        ("enabled", "yes" if task["enabled"] else "no"),
        ("tiers", ", ".join(task["tiers"])),
        ("next runs", ", ".join(task.get("next_times") or []) or "none"),
        ("concurrency / misfire", f"{task['concurrency']} / {task['misfire']} ({task['misfire_grace_seconds']}s)"),
        ("locks", ", ".join(task["locks"])),
        ("windows", ", ".join(task["windows"])),
        ("retries", f"{task['max_retries']} (backoff {task['retry_backoff_seconds']}s)"),
        ("timeout", f"{task['timeout_seconds']}s" if task["timeout_seconds"] else "none"),
        ("queue", task["queue"]),
        ("managed by", task["managed_by"]),
        ("last run", f"{task['last_run_id'] or ''} {task['last_status'] or ''} {task['last_outcome'] or ''}".strip()),
        ("last success", task["last_success_at"] or ""),
    ]
    after = task.get("after")
    if after:
        within = f", within {after['within']}" if len(after["tasks"]) > 1 else ""
        rows.append(("upstream", f"{', '.join(after['tasks'])} (on {after['on']}{within})"))
    else:
        rows.append(("upstream", "none"))
    rows.append(("downstream", ", ".join(task.get("downstream") or []) or "none"))
    if task.get("drift"):
        rows.append(("drift", "changed outside upkeep.yaml: " + ", ".join(task["drift"])))
    for key, value in rows:
        echo(f"{key + ':':<24}{value}")
    echo("config:")
    text = yaml.safe_dump(task["config"], sort_keys=True, default_flow_style=False).rstrip()
    for line in (text if task["config"] else "{}").splitlines():
        echo(f"  {line}")


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Unique task name"),
    task_type: str = typer.Option(..., "--type", "-t", help="Handler type, e.g. runs.cleanup_expired"),
    schedule: str = typer.Option(None, "--schedule", "-s", help="cron, @daily, @every 10m, @once ISO, or none"),
    timezone: str = typer.Option(None, "--tz", "--timezone", help="IANA time zone of the schedule (UTC)"),
    set_: list[str] = typer.Option(None, "--set", help="config key=value (YAML value); repeatable"),
    tier: list[str] = typer.Option(None, "--tier", help="Tier (daily, weekly, ...); repeatable"),
    lock: list[str] = typer.Option(None, "--lock", help="Mutex shared across tasks; repeatable"),
    window: list[str] = typer.Option(None, "--window", help='Maintenance window "Sun 02:00-05:00 UTC"'),
    timeout: float = typer.Option(None, "--timeout", help="Timeout in seconds"),
    max_retries: int = typer.Option(None, "--max-retries", help="Retries after a failure"),
    description: str = typer.Option(None, "--description", help="What the task is for"),
    disabled: bool = typer.Option(False, "--disabled", help="Create it disabled"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Create a task (made by the API: `upkeep apply --prune` never deletes it)."""
    from upkeep.app.terms import validate_task

    data: dict[str, Any] = {"name": name, "type": task_type, "config": parse_assignments(set_)}
    optional = {
        "schedule": schedule,
        "timezone": timezone,
        "tiers": tier or None,
        "locks": lock or None,
        "windows": window or None,
        "timeout_seconds": timeout,
        "max_retries": max_retries,
        "description": description,
    }
    data.update({k: v for k, v in optional.items() if v is not None})
    if disabled:
        data["enabled"] = False
    validate_task(data)  # before the store is opened: a bad task writes nothing
    view = state(ctx).service.create_task(data, actor=actor())
    if as_json:
        print_json(view)
    else:
        echo(f"created task {view['name']} ({view['type']}); next run {view['next_run_at'] or 'none'}")


@app.command("set")
def set_fields(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Task name or id"),
    assignments: list[str] = typer.Argument(..., metavar="FIELD=VALUE...", help="e.g. schedule='0 4 * * *' config.x=1"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Change fields of a task; config.KEY=VALUE changes one config key (config.KEY=null removes it)."""
    changes = parse_assignments(assignments, what="FIELD=VALUE")
    view = state(ctx).service.update_task(name, changes, actor=actor(), patch=True)
    if as_json:
        print_json(view)
    else:
        echo(f"updated task {view['name']}; next run {view['next_run_at'] or 'none'}")


def _enable(ctx: typer.Context, name: str, enabled: bool, as_json: bool) -> None:
    view = state(ctx).service.set_enabled(name, enabled, actor=actor())
    if as_json:
        print_json(view)
    else:
        echo(f"{'enabled' if enabled else 'disabled'} task {view['name']}")


@app.command("enable")
def enable(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Task name or id"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Enable a task (its next slot is computed from now)."""
    _enable(ctx, name, True, as_json)


@app.command("disable")
def disable(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Task name or id"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Disable a task (it keeps its history)."""
    _enable(ctx, name, False, as_json)


@app.command("trigger")
def trigger(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Task name or id"),
    set_: list[str] = typer.Option(None, "--set", help="Override an overridable config field; repeatable"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Dry run"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Confirm a run that needs it"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Queue a run now for the workers of `upkeep serve` (use `upkeep run` to run it here)."""
    view = state(ctx).service.trigger(
        name, actor=actor(), overrides=parse_assignments(set_), dry_run=dry_run, confirm=yes
    )
    if as_json:
        print_json(view)
    else:
        echo(f"queued run {view['id']} of {view['task_name']}; follow it with `upkeep runs logs {view['id']} -f`")


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Task name or id"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask"),
) -> None:
    """Delete a task (pending runs are cancelled; a running run is asked to cancel)."""
    service = state(ctx).service
    task = service.get_task(name)
    if task["managed_by"] == "file":
        echo(f"note: {task['name']} is defined in the config file; `upkeep apply` will create it again")
    confirm_or_fail(yes, f"delete task {task['name']}?")
    service.delete_task(task["name"], actor=actor())
    echo(f"deleted task {task['name']}")

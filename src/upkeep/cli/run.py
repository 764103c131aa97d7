"""``upkeep run``: run a task, a handler type or a whole tier now, in the foreground.

The run is created through the application layer, reserved for this process
(``lifecycle.dispatch_to``) and executed in a killable worker process (``ForegroundRunner``), so
timeouts and cancels kill the whole process tree. Its events stream to the terminal. When a running
``upkeep serve`` takes the run first, this command just follows it to the end. Ctrl-C asks for a
cancel (a second Ctrl-C stops waiting).

Exit code: 0 completed (outcome ok or warning); 1 a run was recorded and failed (whatever the cause),
timed out, was cancelled or skipped, or found something critical (over all runs of a tier); 2 usage
or config errors refused before any run was created.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import typer

from upkeep.cli.common import actor, duration, echo, parse_assignments, print_json, state, table
from upkeep.errors import UserError

TERMINAL = ("completed", "failed", "cancelled", "timed_out", "skipped")


def exit_code_of(view: dict[str, Any]) -> int:
    """0 for a completed run whose outcome is ok or warning; 1 otherwise. A run exists, so it is never
    2, which says that nothing was run (the run's error says what to fix)."""
    return 0 if view["status"] == "completed" and view.get("outcome") != "critical" else 1


def format_event(event: dict[str, Any], prefix: str = "") -> str:
    ts = event["ts"][11:19]
    return f"{prefix}{ts} {event['level']:<7} {event['event']}: {event['message']}"


def format_result(view: dict[str, Any]) -> str:
    label = view.get("task_name") or view["task_type"]
    outcome = f" ({view['outcome']})" if view.get("outcome") else ""
    text = f"run {view['id']} of {label}: {view['status']}{outcome}"
    if view.get("duration_seconds") is not None:
        text += f" in {duration(view['duration_seconds'])}"
    if view.get("summary"):
        text += f": {view['summary']}"
    if view.get("error"):
        text += f" — {view['error']}"
    return text


class _Interrupts:
    """First Ctrl-C: ask to cancel the run. Second: stop waiting (KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.count = 0
        self._previous: Any = None

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def follow_run(
    st,
    run_id: int,
    *,
    reserved: bool,
    show: Callable[[str], None] | None,
    prefix: str = "",
    poll: float = 0.25,
) -> dict[str, Any]:
    """Execute a run in the foreground (or follow whoever has it) until it ends; its final view."""
    from upkeep.app import foreground

    runs, settings, store = st.runs, st.settings, st.store()
    label = foreground.label()
    seq = 0
    cancel_sent = False

    with _Interrupts() as interrupts:

        def tick() -> None:
            nonlocal seq, cancel_sent
            if interrupts.count and not cancel_sent:
                cancel_sent = True
                if show:
                    show(f"{prefix}cancelling run {run_id} (Ctrl-C again to stop waiting)")
                st.service.cancel_run(run_id, actor=actor())
            for event in runs.run_events(run_id, after=seq):
                seq = event["seq"]
                if show:
                    show(format_event(event, prefix))

        while True:
            view = runs.get_run(run_id)
            if view["status"] in TERMINAL:
                tick()
                return view
            due = datetime.fromisoformat(view["due_at"]) if view.get("due_at") else None
            mine = reserved or (
                view["status"] == "pending"
                and (due is None or due <= datetime.now(UTC))
                and foreground.take(store, run_id, label)
            )
            reserved = False
            if mine:
                foreground.runner(settings, store).execute(run_id, on_tick=tick, poll=0.1)
                continue  # re-read: a busy lock puts the run back to pending
            tick()
            time.sleep(poll)


def ran_in_foreground() -> bool:
    """Whether this process executed a run in a worker of its own (and so stops it at exit)."""
    from upkeep.app import foreground

    return foreground.ran_here()


def _tiers_chosen(tier: str | None, flags: dict[str, bool]) -> list[str]:
    chosen = [name for name, on in flags.items() if on]
    if tier:
        from upkeep.app.terms import TIERS  # the task model's: only a tier's run needs it

        if tier not in TIERS:
            raise UserError(f"unknown tier {tier!r}", hint=f"one of {', '.join(TIERS)}", field="tier")
        chosen.insert(0, tier)
    chosen = list(dict.fromkeys(chosen))
    if len(chosen) > 1:
        raise UserError("give one tier at a time", hint=f"got {', '.join(chosen)}")
    return chosen


def run(
    ctx: typer.Context,
    target: str = typer.Argument(None, metavar="NAME_OR_TYPE", help="A task name, or a handler type"),
    set_: list[str] = typer.Option(None, "--set", help="key=value (YAML value); repeatable"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would be done; change nothing"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Confirm a run that needs it (e.g. a restore)"),
    timeout: float = typer.Option(None, "--timeout", help="Timeout in seconds (handler types only)"),
    tier: str = typer.Option(None, "--tier", help="Run every enabled task of this tier"),
    daily: bool = typer.Option(False, "--daily", help="Same as --tier daily"),
    weekly: bool = typer.Option(False, "--weekly", help="Same as --tier weekly"),
    monthly: bool = typer.Option(False, "--monthly", help="Same as --tier monthly"),
    quarterly: bool = typer.Option(False, "--quarterly", help="Same as --tier quarterly"),
    yearly: bool = typer.Option(False, "--yearly", help="Same as --tier yearly"),
    as_json: bool = typer.Option(False, "--json", help="Print the final run view(s) as JSON, no streaming"),
) -> None:
    """Run a task (by name) or a handler type now, in the foreground, streaming its events."""
    st = state(ctx)
    tiers = _tiers_chosen(
        tier, {"daily": daily, "weekly": weekly, "monthly": monthly, "quarterly": quarterly, "yearly": yearly}
    )
    show = None if as_json else echo
    if tiers:
        if target:
            raise UserError("give either NAME_OR_TYPE or a tier, not both")
        if set_:
            raise UserError("--set applies to one task, not a tier")
        raise typer.Exit(_run_tier(st, tiers[0], dry_run=dry_run, show=show, as_json=as_json))
    if not target:
        raise UserError("nothing to run", hint="give a task name or handler type, or --tier daily")
    config = parse_assignments(set_)
    runs = st.runs
    task_type = runs.task_type(target)
    if task_type is not None:
        if timeout is not None:
            raise UserError("--timeout applies to handler types; a task has its own timeout_seconds")
        _prepare_worker(st, task_type)
        view = runs.trigger(target, actor=actor(), overrides=config, dry_run=dry_run, confirm=yes)
        reserved = False
    else:
        try:
            runs.resolve(target)
        except UserError:
            guess = runs.suggest(target)
            raise UserError(
                f"no task or handler type named {target!r}",
                hint=f"{guess + ' ' if guess else ''}`upkeep tasks list` shows tasks, "
                "`upkeep handlers list` handler types",
            ) from None
        if timeout is not None and timeout <= 0:
            raise UserError("--timeout must be positive", field="timeout")
        _prepare_worker(st, target)
        from upkeep.app import foreground

        view = runs.create_adhoc_run(
            target,
            config,
            actor=actor(),
            dry_run=dry_run,
            confirm=yes,
            timeout_seconds=timeout,
            reserved_by=foreground.label(),
        )
        reserved = True
    raise typer.Exit(_follow_and_report(st, view, reserved=reserved, show=show, as_json=as_json))


def _prepare_worker(st, task_type: str) -> None:
    """Fork the worker that will execute the run now, or tell the one the console script forked
    (``upkeep.cli.script``) what to serve: it imports what the handler preloads (DuckDB for
    logs.analyze) while this process creates the run."""
    spec = st.runs.resolve(task_type)[0]
    from upkeep.app import foreground

    foreground.runner(st.settings, st.store(), spec.preload).prepare()


def _follow_and_report(st, view: dict[str, Any], *, reserved: bool, show, as_json: bool) -> int:
    if show:
        what = view.get("task_name") or view["task_type"]
        show(f"run {view['id']}: {what}{' (dry run)' if view['dry_run'] else ''}")
    final = follow_run(st, view["id"], reserved=reserved, show=show)
    if as_json:
        print_json(final)
    else:
        echo(format_result(final))
    return exit_code_of(final)


def run_handler_now(st, task_type: str, config: dict[str, Any], *, dry_run: bool, confirm: bool) -> int:
    """Run a handler type ad hoc in the foreground, streaming its events; the exit code."""
    from upkeep.app import foreground

    view = st.runs.create_adhoc_run(
        task_type,
        config,
        actor=actor(),
        dry_run=dry_run,
        confirm=confirm,
        reserved_by=foreground.label(),
    )
    return _follow_and_report(st, view, reserved=True, show=echo, as_json=False)


def _run_tier(st, tier: str, *, dry_run: bool, show, as_json: bool) -> int:
    views = st.runs.trigger_tier(tier, actor=actor(), dry_run=dry_run)
    if show:
        show(f"tier {tier}: {len(views)} task(s){' (dry run)' if dry_run else ''}")
    finals = []
    for view in views:
        name = view.get("task_name") or view["task_type"]
        if show:
            show(f"--- {name} (run {view['id']})")
        final = follow_run(st, view["id"], reserved=False, show=show, prefix="  ")
        finals.append(final)
        if show:
            show("  " + format_result(final))
    code = 1 if any(exit_code_of(v) for v in finals) else 0  # runs happened: a failure is 1, not 2
    if as_json:
        print_json({"tier": tier, "exit_code": code, "runs": finals})
        return code
    table(
        ["task", "run", "status", "outcome", "duration", "summary"],
        [
            [
                v.get("task_name"),
                v["id"],
                v["status"],
                v.get("outcome") or "",
                duration(v.get("duration_seconds")),
                (v.get("summary") or v.get("error") or "")[:200],
            ]
            for v in finals
        ],
        title=f"tier {tier}",
    )
    failed = sum(1 for v in finals if exit_code_of(v))
    echo(f"{len(finals) - failed} of {len(finals)} run(s) ok" + (f", {failed} not ok" if failed else ""))
    return code

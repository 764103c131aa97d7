"""``upkeep approvals list|approve|reject``: decide the approval steps procedure runs wait at."""

from __future__ import annotations

import typer

from upkeep.cli.common import actor, echo, print_json, short_time, state, table

approvals_app = typer.Typer(no_args_is_help=True)


@approvals_app.command("list")
def list_(
    ctx: typer.Context,
    status: str = typer.Option("pending", "--status", help="pending, approved, rejected or expired"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Approvals, newest first (by default those a run waits for)."""
    from upkeep.app.people import approvals
    from upkeep.errors import UserError

    if status not in approvals.STATUSES:
        raise UserError(f"unknown status {status!r}", hint=", ".join(approvals.STATUSES), field="status")
    items = approvals.list_approvals(state(ctx).store(), status=status)
    if as_json:
        print_json(items)
        return
    rows = [
        [a["id"], a["run_id"], a["task_name"] or "", f"{a['step']}: {a['step_name']}", a["role"], a["status"]]
        + [short_time(a["expires_at"]) if a["status"] == "pending" else (a["decided_by"] or ""), a["message"]]
        for a in items
    ]
    table(["id", "run", "task", "step", "role", "status", "expires (UTC) / by", "message"], rows)
    echo(f"{len(items)} approval(s)")


def _decide(ctx: typer.Context, approval_id: int, name: str, approve: bool, reason: str | None, as_json: bool) -> None:
    from upkeep.app.approvals import decide
    from upkeep.app.people import accounts, approvals

    store = state(ctx).store()
    needed = approvals.get(store, approval_id)["role"]
    who = accounts.person_actor(store, name, role=needed)
    view = decide(
        state(ctx).service,
        approval_id,
        approve=approve,
        actor=who,
        role=needed,
        reason=reason,
        detail=f"decided in the CLI by {actor()}",
    )
    if as_json:
        print_json(view)
        return
    then = "goes on at its next step" if approve else "is cancelled"
    echo(f"approval {approval_id} {view['status']} by {who}: run {view['run_id']} {then}")


@approvals_app.command("approve")
def approve(
    ctx: typer.Context,
    approval_id: int = typer.Argument(..., help="Approval id (`upkeep approvals list`)"),
    as_name: str = typer.Option(..., "--as", help="The person approving (an account with the step's role)"),
    reason: str = typer.Option(None, "--reason", help="A note kept with the decision"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Approve, as the person NAME: the procedure run goes on at its next step."""
    _decide(ctx, approval_id, as_name, True, reason, as_json)


@approvals_app.command("reject")
def reject(
    ctx: typer.Context,
    approval_id: int = typer.Argument(..., help="Approval id (`upkeep approvals list`)"),
    as_name: str = typer.Option(..., "--as", help="The person rejecting (an account with the step's role)"),
    reason: str = typer.Option(..., "--reason", help="Why (the run is cancelled with it)"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Reject, as the person NAME: the procedure run is cancelled with the reason."""
    _decide(ctx, approval_id, as_name, False, reason, as_json)

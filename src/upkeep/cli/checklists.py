"""``upkeep checklists list|show|check|skip``: sign off the checklists ``checklist.run`` tasks open."""

from __future__ import annotations

import typer

from upkeep.cli.common import actor, echo, print_json, short_time, state, table

checklists_app = typer.Typer(no_args_is_help=True)
SIGNER_ROLE = "operator"


@checklists_app.command("list")
def list_(
    ctx: typer.Context,
    status: str = typer.Option(None, "--status", help="open or completed"),
    task: str = typer.Option(None, "--task", help="Only checklists this task opened"),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=500, help="How many (newest first)"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """List checklists, newest first."""
    from upkeep.app.people import checklists

    items, total = checklists.list_checklists(state(ctx).store(), status=status, task=task, limit=limit)
    if as_json:
        print_json({"total": total, "checklists": items})
        return
    table(
        ["id", "title", "task", "status", "done", "opened (UTC)", "due (UTC)"],
        [
            [
                c["id"],
                c["title"],
                c["task_name"] or "",
                c["status"] + (f" · {c['outcome']}" if c["outcome"] else "") + (" · OVERDUE" if c["overdue"] else ""),
                f"{c['items_done']}/{c['items_total']}",
                short_time(c["opened_at"]),
                short_time(c["due_at"]),
            ]
            for c in items
        ],
    )
    echo(f"{len(items)} of {total} checklist(s)")


@checklists_app.command("show")
def show(
    ctx: typer.Context,
    checklist_id: int = typer.Argument(..., help="Checklist id"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Show a checklist and its numbered items (ITEM in check and skip is that number)."""
    from upkeep.app.people import checklists

    view = checklists.get_checklist(state(ctx).store(), checklist_id)
    if as_json:
        print_json(view)
        return
    opened_by = f" (task {view['task_name']}, run {view['run_id']})" if view["task_name"] else ""
    echo(f"checklist {view['id']}: {view['title']}{opened_by}")
    status = view["status"] + (f", outcome {view['outcome']}" if view["outcome"] else "")
    due = (
        f"; due {short_time(view['due_at'])} UTC" + (" (OVERDUE)" if view["overdue"] else "") if view["due_at"] else ""
    )
    echo(f"{status}; {view['items_done']} of {view['items_total']} done{due}")
    table(["#", "state", "item", "by", "at (UTC)", "note / evidence"], [_row(i) for i in view["items"]])


def _row(item: dict) -> list:
    text = item["text"]
    if item["kind"] == "automatic":
        text += f" [automatic: {item['task']}]"
    evidence = (item.get("evidence") or {}).get("reason")
    detail = item["note"] or (evidence if item["state"] == "open" or item["kind"] == "automatic" else "") or ""
    return [item["position"], item["state"], text, item["by"] or "", short_time(item["at"]), detail]


def _signer(ctx: typer.Context, name: str) -> tuple[str, str]:
    from upkeep.app.people import accounts

    return accounts.person_actor(state(ctx).store(), name, role=SIGNER_ROLE), f"signed in the CLI by {actor()}"


@checklists_app.command("check")
def check(
    ctx: typer.Context,
    checklist_id: int = typer.Argument(..., help="Checklist id"),
    item: int = typer.Argument(..., help="The item's number, as `show` lists it"),
    as_name: str = typer.Option(..., "--as", help="The person signing (an account with the operator role)"),
    note: str = typer.Option(None, "--note", help="What was done or found"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Check an item, as the person NAME (audited under their name)."""
    from upkeep.app.people import checklists

    who, detail = _signer(ctx, as_name)
    view = checklists.check_item(state(ctx).store(), checklist_id, item, actor=who, note=note, detail=detail)
    _done(view, item, "checked", as_json)


@checklists_app.command("skip")
def skip(
    ctx: typer.Context,
    checklist_id: int = typer.Argument(..., help="Checklist id"),
    item: int = typer.Argument(..., help="The item's number, as `show` lists it"),
    as_name: str = typer.Option(..., "--as", help="The person signing (an account with the operator role)"),
    reason: str = typer.Option(..., "--reason", help="Why the item was not done"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Skip an item, saying why; the checklist then completes with outcome warning."""
    from upkeep.app.people import checklists

    who, detail = _signer(ctx, as_name)
    view = checklists.skip_item(state(ctx).store(), checklist_id, item, actor=who, reason=reason, detail=detail)
    _done(view, item, "skipped", as_json)


def _done(view: dict, item: int, verb: str, as_json: bool) -> None:
    if as_json:
        print_json(view)
        return
    echo(f"checklist {view['id']}: item {item} {verb}; {view['items_done']} of {view['items_total']} done")
    if view["status"] != "open":
        echo(f"checklist {view['id']} completed, outcome {view['outcome']}")

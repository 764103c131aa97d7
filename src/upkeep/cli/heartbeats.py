"""``upkeep heartbeats list|show|pause|resume``: monitors of jobs upkeep does not run.

Monitors are declared under ``heartbeats:`` in upkeep.yaml (``upkeep apply``) or made by admins
through the API. ``show`` prints the ping URL (``UPKEEP_PUBLIC_URL/ping/TOKEN``) to put in the
job's crontab line: ``CMD; curl -fsS -m 10 --retry 3 -o /dev/null URL/$?``.
"""

from __future__ import annotations

from typing import Any

import typer

from upkeep.cli.common import actor, echo, print_json, short_time, state, table

heartbeats_app = typer.Typer(no_args_is_help=True)


def _now():
    from upkeep.clock import utcnow

    return utcnow()


@heartbeats_app.command("list")
def list_(
    ctx: typer.Context,
    status: str = typer.Option(None, "--status", help="Only monitors in this status (up, late, down, ...)"),
    search: str = typer.Option(None, "--search", help="Name contains"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """List monitors with their status, last ping and when the next one is due."""
    from upkeep.app.heartbeats import STATUSES, list_heartbeats
    from upkeep.errors import UserError

    if status and status not in STATUSES:
        raise UserError(f"unknown status {status!r}", hint=f"one of {', '.join(STATUSES)}", field="status")
    items = list_heartbeats(state(ctx).store(), _now(), status=status, search=search)
    if as_json:
        print_json({"total": len(items), "heartbeats": items})
        return
    table(
        ["name", "status", "schedule", "grace", "last ping (UTC)", "due by (UTC)", "by"],
        [
            [
                h["name"],
                h["status"],
                h["schedule"] + ("" if h["timezone"] == "UTC" else f" ({h['timezone']})"),
                h["grace"],
                " ".join(x for x in (short_time(h["last_ping_at"]), h["last_ping_kind"] or "") if x),
                short_time(h["expected_at"]),
                h["managed_by"],
            ]
            for h in items
        ],
    )
    echo(f"{len(items)} monitor(s)")


@heartbeats_app.command("show")
def show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Monitor name or id"),
    pings: int = typer.Option(10, "--pings", min=0, max=1000, help="How many recent pings"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (with ping_url)"),
) -> None:
    """Show a monitor: its schedule, status, ping URL and recent pings."""
    from upkeep.app.heartbeats import get_heartbeat

    st = state(ctx)
    view = get_heartbeat(st.store(), name, _now(), settings=st.settings, with_url=True, pings=pings)
    if as_json:
        print_json(view)
        return
    _print(view)


def _print(h: dict[str, Any]) -> None:
    rows = [
        ("name", h["name"]),
        ("description", h["description"]),
        ("schedule", f"{h['schedule']} ({h['timezone']}): {h['schedule_text']}"),
        ("grace / timeout", f"{h['grace']} / {h['timeout'] or h['grace'] + ' (the grace)'}"),
        ("status", f"{h['status']}: {h['status_reason']}"),
        ("next due by", h["expected_at"] or ""),
        ("last success", h["last_success_at"] or ""),
        ("last failure", h["last_failure_at"] or ""),
        ("pings", str(h["ping_count"])),
        ("notify", ", ".join(h["notify"].get("channels") or []) or "(default channels)"),
        ("managed by", h["managed_by"]),
        ("ping URL", h["ping_url"]),
    ]
    for key, value in rows:
        echo(f"{key + ':':<18}{value}")
    echo(f"in a crontab line: CMD; curl -fsS -m 10 --retry 3 -o /dev/null {h['ping_url']}/$?")
    if h.get("pings"):
        table(
            ["received (UTC)", "kind", "exit", "from", "body"],
            [
                [
                    short_time(p["received_at"]),
                    p["kind"],
                    p["exit_status"],
                    p["source"],
                    (p["body"] or "").strip().splitlines()[-1][:60] if (p["body"] or "").strip() else "",
                ]
                for p in h["pings"]
            ],
        )


def _pause(ctx: typer.Context, name: str, paused: bool, as_json: bool) -> None:
    from upkeep.app.heartbeats import set_paused

    view = set_paused(state(ctx).store(), name, paused, actor=actor(), now=_now())
    if as_json:
        print_json(view)
        return
    echo(f"{view['name']}: {'paused (pings are recorded, nothing alerts)' if paused else 'resumed'}")


@heartbeats_app.command("pause")
def pause(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Monitor name or id"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Pause a monitor: pings are still recorded, nothing alerts."""
    _pause(ctx, name, True, as_json)


@heartbeats_app.command("resume")
def resume(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Monitor name or id"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Resume a monitor: the next ping is expected by the schedule from now on."""
    _pause(ctx, name, False, as_json)

"""``upkeep alerts list|show|ack``: alerts as the alerter keeps them (open, acknowledged, resolved),
with what became of each of their messages.

upkeep alerts list [--state open] [--json]     newest first, each with its delivery history
upkeep alerts show ID [--json]                 one alert, its messages and the targets it explains
upkeep alerts ack ID                           take it: escalation and reminders stop
"""

from __future__ import annotations

import typer

from upkeep.cli.common import actor, echo, print_json, short_time, state, table

alerts_app = typer.Typer(no_args_is_help=True)


def _deliveries(alert: dict) -> str:
    counts: dict[str, int] = {}
    for d in alert.get("deliveries") or []:
        key = f"{d['kind']} {d['status']}"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in counts.items()) or "-"


@alerts_app.command("list")
def list_(
    ctx: typer.Context,
    alert_state: str = typer.Option(None, "--state", help="open, acknowledged or resolved"),
    limit: int = typer.Option(100, "--limit", "-n", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (every delivery included)"),
) -> None:
    """Alerts, newest first: their state, what they are about and what became of their messages."""
    from upkeep.app.alerts import list_alerts

    rows = list_alerts(state(ctx).store(), state=alert_state, limit=limit)
    if as_json:
        print_json(rows)
        return
    if not rows:
        echo("no alerts")
        return
    table(
        ["id", "state", "opened (UTC)", "title", "note", "messages", "by"],
        [
            [
                r["id"],
                r["state"],
                short_time(r["opened_at"]),
                r["title"],
                "; ".join(x for x in (r["note"], f"{len(r['dependents'])} dependent" if r["dependents"] else "") if x),
                _deliveries(r),
                r["acknowledged_by"] or "",
            ]
            for r in rows
        ],
    )


@alerts_app.command("show")
def show(
    ctx: typer.Context,
    alert_id: int = typer.Argument(..., help="The alert id"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One alert: its message, the targets failing because of it, and every delivery."""
    from upkeep.app.alerts import get_alert

    alert = get_alert(state(ctx).store(), alert_id)
    if as_json:
        print_json(alert)
        return
    echo(f"alert {alert['id']} ({alert['state']}): {alert['title']}")
    echo(f"subject: {alert['subject']}   opened: {alert['opened_at']}")
    if alert["acknowledged_at"]:
        echo(f"acknowledged: {alert['acknowledged_at']} by {alert['acknowledged_by']}")
    if alert["resolved_at"]:
        echo(f"resolved: {alert['resolved_at']}")
    if alert["note"]:
        echo(f"note: {alert['note']}")
    if alert["dependents"]:
        echo(f"failing because it is down: {', '.join(alert['dependents'])}")
    echo(alert["body"])
    table(
        ["at (UTC)", "channel", "kind", "status", "error"],
        [[short_time(d["at"]), d["channel"], d["kind"], d["status"], d["error"] or ""] for d in alert["deliveries"]],
    )


@alerts_app.command("ack")
def ack(ctx: typer.Context, alert_id: int = typer.Argument(..., help="The alert id")) -> None:
    """Acknowledge an alert: its escalation and reminders stop; it resolves when the problem ends."""
    from upkeep.app.alerts import acknowledge

    alert = acknowledge(state(ctx).store(), alert_id, actor=actor())
    echo(f"alert {alert['id']} acknowledged by {alert['acknowledged_by']}: {alert['title']}")

"""``upkeep notify``: test a channel, silence alerts, see silences and recent alerts.

upkeep notify test CHANNEL                       send a test message (exit 0 sent, 2 not sent)
upkeep notify silence TASK --until 2h --reason "migration"
upkeep notify silence --channel email --until 2030-01-01T08:00Z
upkeep notify unsilence ID
upkeep notify silences list [--all]
upkeep notify history                            the last alerts: sent, suppressed, failed
upkeep notify evaluate                           one alert evaluation now (normally the scheduler's job)
"""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from upkeep.cli.common import actor, echo, print_json, short_time, state, table

notify_app = typer.Typer(help="Alerts: test channels, silences, recent alerts", no_args_is_help=True)
silences_app = typer.Typer(help="Silences of alerts", no_args_is_help=True)
notify_app.add_typer(silences_app, name="silences")


@notify_app.command("test")
def test_channel(
    ctx: typer.Context, channel: str = typer.Argument(..., help="A channel name from upkeep.yaml")
) -> None:
    """Send a test message to CHANNEL; exit 0 when the channel accepted it, 2 when not."""
    from upkeep.notify.channels import send_test

    sent = send_test(state(ctx).store(), channel)  # DeliveryFailed/NotFound -> one line, exit 2
    echo(f"test message sent to {channel} ({sent.display_url})")


@notify_app.command("silence")
def silence(
    ctx: typer.Context,
    task: str = typer.Argument(None, help="Task to silence (on every channel unless --channel)"),
    channel: str = typer.Option(None, "--channel", "-c", help="Channel to silence (for every task unless TASK)"),
    until: str = typer.Option(..., "--until", "-u", help="A duration (2h, 1d) or an ISO-8601 time"),
    reason: str = typer.Option("", "--reason", "-r", help="Why (kept in the audit log)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Suppress alerts of a task and/or a channel until a time."""
    from upkeep.notify.silences import add_silence, parse_until

    now = datetime.now(UTC)
    view = add_silence(
        state(ctx).store(),
        task=task,
        channel=channel,
        until=parse_until(until, now),
        reason=reason,
        actor=actor(),
        now=now,
    )
    if as_json:
        print_json(view)
        return
    scope = " on ".join(x for x in (f"task {task}" if task else "", f"channel {channel}" if channel else "") if x)
    echo(f"silence {view['id']}: {scope} until {view['until']}")


@notify_app.command("unsilence")
def unsilence(ctx: typer.Context, silence_id: int = typer.Argument(..., help="The silence id")) -> None:
    """End a silence now."""
    from upkeep.notify.silences import remove_silence

    view = remove_silence(state(ctx).store(), silence_id, actor=actor())
    echo(f"silence {view['id']} ended")


@silences_app.command("list")
def silences_list(
    ctx: typer.Context,
    include_expired: bool = typer.Option(False, "--all", help="Include silences that ended"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Active silences (with --all, ended ones too)."""
    from upkeep.notify.silences import list_silences

    rows = list_silences(state(ctx).store(), include_expired=include_expired)
    if as_json:
        print_json(rows)
        return
    if not rows:
        echo("no active silences" if not include_expired else "no silences")
        return
    table(
        ["id", "task", "channel", "until", "active", "reason", "by"],
        [
            [
                r["id"],
                r["task"] or "*",
                r["channel"] or "*",
                short_time(r["until"]),
                "yes" if r["active"] else "no",
                r["reason"],
                r["created_by"],
            ]
            for r in rows
        ],
    )


@notify_app.command("history")
def history(
    ctx: typer.Context,
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=200),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The most recent alerts and what became of them (sent, suppressed, failed, dropped)."""
    from upkeep.notify.outbox import history as alert_history

    rows = alert_history(state(ctx).store(), limit)
    if as_json:
        print_json(rows)
        return
    if not rows:
        echo("no alerts yet")
        return
    table(
        ["at", "channel", "status", "title", "error"],
        [[short_time(r.get("at")), r["channel"], r["status"], r["title"], r.get("error") or ""] for r in rows],
    )


@notify_app.command("evaluate")
def evaluate(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Run one alert evaluation now (the scheduler and `upkeep serve` do this every few seconds)."""
    from upkeep.notify.alerter import Alerter

    st = state(ctx)
    notes = Alerter(st.store(), st.settings).evaluate_once()
    if as_json:
        print_json([n.as_history() for n in notes])
        return
    for note in notes:
        echo(f"{note.status}: {note.channel}: {note.title}" + (f" ({note.error})" if note.error else ""))
    if not notes:
        echo("nothing to send")

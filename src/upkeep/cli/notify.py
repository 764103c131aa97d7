"""``upkeep notify``: test a channel, silence alerts, see silences and recent alerts.

upkeep notify test CHANNEL                       send a test message (exit 0 sent, 2 not sent)
upkeep notify silence TASK --until 2h --reason "migration"
upkeep notify silence --channel email --until 2030-01-01T08:00Z
upkeep notify silence --target services.api --window "Sun 02:00-05:00 Europe/Zagreb"
upkeep notify unsilence ID
upkeep notify silences list [--all]
upkeep notify history                            the last alerts: sent, suppressed, failed
upkeep notify evaluate                           one alert evaluation now (normally the scheduler's job)
"""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from upkeep.cli.common import actor, echo, print_json, short_time, state, table

notify_app = typer.Typer(no_args_is_help=True)
silences_app = typer.Typer(help="Silences of alerts", no_args_is_help=True)
notify_app.add_typer(silences_app, name="silences")


@notify_app.command("test")
def test_channel(
    ctx: typer.Context, channel: str = typer.Argument(..., help="A channel name from upkeep.yaml")
) -> None:
    """Send a test message to CHANNEL; exit 0 when the channel accepted it, 2 when not."""
    from upkeep.app.notifications import send_channel_test
    from upkeep.notify.channels import DeliveryFailed

    # the API's "Send test" too: audited and kept in the notification history either way
    sent = send_channel_test(state(ctx).store(), channel, actor=actor())  # NotFound -> one line, exit 2
    if sent["status"] != "sent":
        raise DeliveryFailed(sent["error"])
    echo(f"test message sent to {channel} ({sent['url']})")


@notify_app.command("silence")
def silence(
    ctx: typer.Context,
    task: str = typer.Argument(None, help="Task to silence (heartbeat/NAME: a heartbeat monitor)"),
    channel: str = typer.Option(None, "--channel", help="Only on this channel (alone: every alert on it)"),
    target: str = typer.Option(None, "--target", help="Alerts of a target, e.g. services.api"),
    tier: str = typer.Option(None, "--tier", help="Alerts of the tasks in a tier (daily, weekly, ...)"),
    heartbeat: str = typer.Option(None, "--heartbeat", help="Alerts of a heartbeat monitor"),
    until: str = typer.Option(None, "--until", "-u", help="A duration (2h, 1d) or an ISO-8601 time"),
    window: list[str] = typer.Option(
        [], "--window", "-w", help="Recurring: 'Sun 02:00-05:00 Europe/Zagreb' (the tasks' syntax); repeatable"
    ),
    reason: str = typer.Option("", "--reason", "-r", help="Why (kept in the audit log)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Hold the alerts that fit (every option given must fit) until a time, during recurring windows, or both."""
    from upkeep.app.alerts import create_silence
    from upkeep.app.heartbeats import ALERT_PREFIX
    from upkeep.notify.silences import describe_match, parse_until

    if task and task.startswith(ALERT_PREFIX):
        task, heartbeat = None, heartbeat or task[len(ALERT_PREFIX) :]
    given = {"task": task, "target": target, "tier": tier, "channel": channel, "heartbeat": heartbeat}
    now = datetime.now(UTC)
    view = create_silence(
        state(ctx).store(),
        match={k: v for k, v in given.items() if v},
        windows=list(window),
        until=parse_until(until, now) if until else None,
        reason=reason,
        actor=actor(),
        now=now,
    )
    if as_json:
        print_json(view)
        return
    when = " ".join(
        x
        for x in (
            f"during {', '.join(view['windows'])}" if view["windows"] else "",
            f"until {view['until']}" if view["until"] else "",
        )
        if x
    )
    echo(f"silence {view['id']}: {describe_match(view['match'])} {when}")


@notify_app.command("unsilence")
def unsilence(ctx: typer.Context, silence_id: int = typer.Argument(..., help="The silence id")) -> None:
    """End a silence now (one from upkeep.yaml ends when it leaves the file)."""
    from upkeep.app.alerts import expire_silence

    view = expire_silence(state(ctx).store(), silence_id, actor=actor())
    echo(f"silence {view['id']} ended")


@silences_app.command("list")
def silences_list(
    ctx: typer.Context,
    include_expired: bool = typer.Option(False, "--all", help="Include silences that ended"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Silences that have not ended (with --all, ended ones too)."""
    from upkeep.app.alerts import list_silences
    from upkeep.notify.silences import describe_match

    rows = list_silences(state(ctx).store(), include_ended=include_expired)
    if as_json:
        print_json(rows)
        return
    if not rows:
        echo("no silences in force" if not include_expired else "no silences")
        return
    table(
        ["id", "match", "windows", "until", "now", "from", "reason", "by"],
        [
            [
                r["id"],
                describe_match(r["match"]),
                ", ".join(r["windows"]) or "-",
                short_time(r["until"]) if r["until"] else "-",
                "holding" if r["active"] else ("ended" if r["ended"] else "waiting"),
                r["managed_by"],
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

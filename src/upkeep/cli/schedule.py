"""``upkeep schedule explain EXPR [--tz TZ] [--count N]``: a schedule in words and its next times."""

from __future__ import annotations

import typer

from upkeep.cli.common import echo, print_json

app = typer.Typer(no_args_is_help=True)


@app.command("explain")
def explain(
    expression: str = typer.Argument(..., metavar="EXPR", help='e.g. "0 3 * * 0", @daily, "@every 10m"'),
    tz: str = typer.Option("UTC", "--tz", help="IANA time zone the expression is read in"),
    count: int = typer.Option(5, "--count", "-n", min=0, max=1000, help="How many next times"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Print what a schedule means (Debian cron semantics) and its next N times in the time zone."""
    from upkeep.app.terms import explain_schedule

    info = explain_schedule(expression, tz, count=count)
    if as_json:
        print_json({**info, "next": [t.isoformat() for t in info["next"]]})
        return
    echo(f"{info['expression'] or '(none)'} ({info['timezone']}): {info['text']}")
    if info["next"]:
        echo(f"next {len(info['next'])}:")
        for slot in info["next"]:
            echo(f"  {slot.strftime('%a %Y-%m-%d %H:%M:%S %Z (%z)')}")
    else:
        echo("no upcoming times")

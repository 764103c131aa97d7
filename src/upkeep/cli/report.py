"""``upkeep report --period day|week|month [--format markdown|html] [-o FILE]``: the maintenance digest.

What ran, what failed, health, backups and their verification, capacity warnings; the HTML version has
small inline SVG charts and no external resources. ``report.send`` sends the same digest on a schedule.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import typer

from upkeep.cli.common import state

report_app = typer.Typer(invoke_without_command=True)


class Period(StrEnum):
    day = "day"
    week = "week"
    month = "month"


class Format(StrEnum):
    markdown = "markdown"
    html = "html"


@report_app.callback(invoke_without_command=True)
def report(
    ctx: typer.Context,
    period: Period = typer.Option(Period.week, "--period", "-p", help="Period the digest covers."),
    format: Format = typer.Option(Format.markdown, "--format", "-f", help="markdown or html (with charts)."),
    output: Path = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Print or write the digest of the last day, week or month."""
    if ctx.invoked_subcommand is not None:
        return
    from upkeep.app.run_services import RunServices

    st = state(ctx)
    services = RunServices(st.store(), st.settings)
    digest = services.digest(period.value, datetime.now(UTC))
    text = services.render_digest(digest, format.value)
    if output is not None:
        from upkeep.private import PRIVATE

        PRIVATE.mkdir(output.parent)
        PRIVATE.write(output, text)
        typer.echo(f"wrote {output} ({digest['status']})")
    else:
        typer.echo(text, nl=False)

"""``upkeep db upgrade|current``: the store's schema migrations (Alembic)."""

from __future__ import annotations

import typer

from upkeep.cli.common import echo, print_json, state

app = typer.Typer(no_args_is_help=True)


@app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Bring the store's schema to the newest revision (concurrent callers serialise)."""
    from upkeep.app.terms import redact_url

    st = state(ctx)
    store = st.store(upgrade=True)
    echo(f"{redact_url(store.url)}: schema at {store.current_revision()} (head)")


@app.command("current")
def current(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON")) -> None:
    """Show the schema revision of the store and whether it is current."""
    from upkeep.app.schema import schema_state

    info = schema_state(state(ctx).settings)
    if as_json:
        print_json(info)
        return
    state_text = "up to date" if info["up_to_date"] else "behind: run `upkeep db upgrade`"
    echo(f"{info['database']}: revision {info['current'] or '(empty)'}, head {info['head']} ({state_text})")

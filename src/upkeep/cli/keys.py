"""``upkeep keys create|list|revoke``: API keys (the token is shown once, stored hashed)."""

from __future__ import annotations

import typer

from upkeep.cli.common import actor, echo, print_json, short_time, state, table

app = typer.Typer(no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="Who or what uses the key"),
    role: str = typer.Option(..., "--role", help="viewer, operator or admin"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (with the token)"),
) -> None:
    """Create an API key; its token is printed once and cannot be shown again."""
    from upkeep.app.keys import create_key

    view, token = create_key(state(ctx).service, name=name, role=role, actor=actor())
    if as_json:
        print_json({**view, "token": token})
        return
    echo(f"created {role} key {name!r}; its token (shown once):")
    echo(token)


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON")) -> None:
    """List API keys (never their tokens)."""
    from upkeep.app.keys import list_keys

    keys = list_keys(state(ctx).store())
    if as_json:
        print_json(keys)
        return
    table(
        ["id", "name", "role", "prefix", "created", "last used", "revoked"],
        [
            [
                k["id"],
                k["name"],
                k["role"],
                k["prefix"],
                short_time(k["created_at"]),
                short_time(k["last_used_at"]),
                short_time(k["revoked_at"]),
            ]
            for k in keys
        ],
    )


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Key name or id"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Revoke an API key (it stops working at once)."""
    from upkeep.app.keys import revoke_key

    view = revoke_key(state(ctx).service, name, actor=actor())
    if as_json:
        print_json(view)
    else:
        echo(f"revoked key {view['name']!r}")

"""``upkeep users create|list|disable|enable|reset``: people's accounts (passwords hashed with argon2)."""

from __future__ import annotations

import sys

import typer

from upkeep.cli.common import actor, echo, print_json, short_time, state, table
from upkeep.errors import UserError

users_app = typer.Typer(no_args_is_help=True)


def read_password(from_stdin: bool) -> str:
    """The password from one line of stdin, or asked twice on a terminal; never from an argument
    (it would sit in the shell history and the process list)."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise UserError("--password-stdin read no password", hint="pipe one line: the password")
        return line
    if sys.stdin.isatty():
        return typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    raise UserError("no terminal to ask for the password", hint="pipe it in with --password-stdin")


def _show(view: dict, as_json: bool, message: str) -> None:
    if as_json:
        print_json(view)
    else:
        echo(message)


@users_app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The account's name (what the proxy header says, with single sign-on)"),
    role: str = typer.Option(..., "--role", help="viewer, operator or admin"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin"),
    no_password: bool = typer.Option(False, "--no-password", help="Sign in through the reverse proxy only"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Create an account; the password is asked on the terminal (or read with --password-stdin)."""
    from upkeep.app.people import accounts

    if no_password and password_stdin:
        raise UserError("--no-password and --password-stdin contradict each other")
    accounts.check_name(name)
    accounts.check_role(role)
    password = None if no_password else read_password(password_stdin)
    st = state(ctx)
    view = accounts.create_user(st.store(), name=name, role=role, password=password, actor=actor())
    how = "through the reverse proxy only" if no_password else "with a password"
    _show(view, as_json, f"created {role} account {name!r} (signs in {how})")


@users_app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON")) -> None:
    """List accounts (never a password hash or TOTP secret)."""
    from upkeep.app.people import accounts

    users = accounts.list_users(state(ctx).store())
    if as_json:
        print_json(users)
        return
    table(
        ["id", "name", "role", "password", "totp", "time zone", "last login", "disabled"],
        [
            [
                u["id"],
                u["name"],
                u["role"],
                "yes" if u["password"] else "proxy only",
                "yes" if u["totp"] else "",
                u["timezone"],
                short_time(u["last_login_at"]),
                short_time(u["disabled_at"]),
            ]
            for u in users
        ],
    )


@users_app.command("disable")
def disable(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Account name or id"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Disable an account: it cannot sign in, and its open sessions end at once."""
    from upkeep.app.people import accounts

    view = accounts.set_enabled(state(ctx).store(), name, False, actor=actor())
    _show(view, as_json, f"disabled account {view['name']!r}; its sessions ended")


@users_app.command("enable")
def enable(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Account name or id"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Enable a disabled account."""
    from upkeep.app.people import accounts

    view = accounts.set_enabled(state(ctx).store(), name, True, actor=actor())
    _show(view, as_json, f"enabled account {view['name']!r}")


@users_app.command("reset")
def reset(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Account name or id"),
    totp: bool = typer.Option(False, "--totp", help="Remove the TOTP factor (alone: keep the password)"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the new password from stdin"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Set a new password (asked, or --password-stdin) and/or remove the TOTP factor (--totp).
    The account's open sessions end."""
    from upkeep.app.people import accounts

    st = state(ctx)
    accounts.get_user(st.store(), name)  # a typo fails before a password is asked
    password = read_password(password_stdin) if password_stdin or not totp else None
    view = accounts.reset_user(st.store(), name, password=password, remove_totp=totp, actor=actor())
    done = " and ".join(x for x in ("password reset" if password else "", "TOTP factor removed" if totp else "") if x)
    _show(view, as_json, f"account {view['name']!r}: {done}; its sessions ended")

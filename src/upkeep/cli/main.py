"""The ``upkeep`` command (the console script ``upkeep.cli.script:main`` calls ``main``).

Every error a user can cause (``UserError``, an invalid config or YAML file, an unreachable
database) becomes exactly one line on stderr, ``error: <message> (<hint>)``, and exit code 2; no
traceback. Exit codes: 0 success (a warning outcome included), 1 a run failed, timed out, was
cancelled or found something critical, 2 usage, config or connection error before any run.

Commands live in one module each, listed in ``COMMANDS`` with their one-line help. A command's
module is imported only when that command runs: ``upkeep --help`` imports none of them, and
``upkeep tasks list`` neither the handlers nor the daemon. Help is plain text (Typer without Rich's
help panels, which cost more to import than the rest of ``upkeep --help``).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup

from upkeep.cli import common
from upkeep.cli.common import State
from upkeep.errors import UserError

# name -> (module, attribute, help), in the order ``upkeep --help`` lists them. The attribute is a
# Typer app (a command group) or a command function; the help here is the command's own.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": (
        "upkeep.cli.commands",
        "init",
        "Write a commented default upkeep.yaml, create .upkeep/, the store and the first admin API key.",
    ),
    "apply": (
        "upkeep.cli.commands",
        "apply",
        "Reconcile the store to upkeep.yaml and print the diff (create / update / delete, drift).",
    ),
    "export": (
        "upkeep.cli.commands",
        "export",
        "Write targets, channels and tasks back as upkeep.yaml (applies back with zero changes).",
    ),
    "serve": (
        "upkeep.cli.commands",
        "serve",
        "API + UI + scheduler + embedded worker in one process (applies upkeep.yaml on start).",
    ),
    "scheduler": (
        "upkeep.cli.commands",
        "scheduler",
        "Run a scheduler alone (several may run against one PostgreSQL store).",
    ),
    "worker": (
        "upkeep.cli.commands",
        "worker",
        "Execute runs: a Celery worker (UPKEEP_EXECUTOR=celery), else an embedded worker pool.",
    ),
    "version": ("upkeep.cli.main", "version", "Print upkeep's version (needs no config file)."),
    "run": (
        "upkeep.cli.run",
        "run",
        "Run a task (by name) or a handler type now, in the foreground, streaming its events.",
    ),
    "doctor": ("upkeep.cli.doctor", "doctor", "Check config, store, binaries, permissions and time-zone data."),
    "tasks": ("upkeep.cli.tasks", "app", "List, show, create, edit, enable, disable, trigger tasks."),
    "runs": ("upkeep.cli.runs", "app", "List, show, follow and cancel runs."),
    "handlers": ("upkeep.cli.handlers", "app", "The registered handler types and their config."),
    "schedule": ("upkeep.cli.schedule", "app", "Explain schedule expressions."),
    "db": ("upkeep.cli.db", "app", "Store schema migrations."),
    "cron": ("upkeep.cli.cron", "app", "A crontab for the tiers; a crontab into upkeep.yaml (import)."),
    "keys": ("upkeep.cli.keys", "app", "API keys."),
    "backups": ("upkeep.cli.backups", "backups_app", "Backups: the catalog, verification and restores."),
    "notify": ("upkeep.cli.notify", "notify_app", "Alerts: test channels, silences, recent alerts"),
    "report": ("upkeep.cli.report", "report_app", "Print or write the maintenance digest (day, week or month)."),
    "heartbeats": ("upkeep.cli.heartbeats", "heartbeats_app", "Heartbeat monitors of jobs upkeep does not run."),
    "users": ("upkeep.cli.users", "users_app", "People's accounts: sign in to the UI with name and password."),
    "checklists": (
        "upkeep.cli.checklists",
        "checklists_app",
        "Checklists people sign off (checklist.run tasks open them).",
    ),
    "approvals": (
        "upkeep.cli.approvals",
        "approvals_app",
        "Approval steps procedure runs wait at: approve or reject as a person.",
    ),
    "alerts": ("upkeep.cli.alerts", "alerts_app", "Alerts: open, acknowledged and resolved, with their messages."),
}


def load_command(name: str) -> TyperCommand | TyperGroup:
    """The click command ``name`` of ``COMMANDS``, its module imported now."""
    module, attr, help_text = COMMANDS[name]
    target = getattr(importlib.import_module(module), attr)
    holder = typer.Typer(rich_markup_mode=None)
    holder.callback()(_no_options)  # a group, whatever it holds
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name, help=help_text, cls=ListingGroup)
    else:
        holder.command(name, help=help_text)(target)
    return typer.main.get_group(holder).commands[name]


def _no_options() -> None:
    pass


class LazyCommands(MutableMapping):
    """The root group's commands: every name of ``COMMANDS``, each loaded on first lookup."""

    def __init__(self, loaded: MutableMapping[str, Any]):
        self._loaded = dict(loaded)

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded:
            if name not in COMMANDS:
                raise KeyError(name)
            self._loaded[name] = load_command(name)
        return self._loaded[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        yield from COMMANDS
        yield from (name for name in self._loaded if name not in COMMANDS)

    def __len__(self) -> int:
        return len(set(COMMANDS) | set(self._loaded))

    def help_of(self, name: str) -> TyperCommand:
        """The command if loaded, else a stand-in carrying its help (for listing it)."""
        if name in self._loaded:
            return self._loaded[name]
        return TyperCommand(name, help=COMMANDS[name][2])


def _user_error_line(exc: BaseException) -> str | None:
    """One line for an error a user can fix (never a traceback, never a password); None for a bug.
    Only the libraries a command imported can have raised their errors, so none is imported here."""
    from upkeep.secrets import redact_url_password

    pydantic = sys.modules.get("pydantic")
    yaml = sys.modules.get("yaml")
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if isinstance(exc, UserError):
        text = str(exc)
    elif pydantic is not None and isinstance(exc, pydantic.ValidationError):
        from upkeep.app.terms import format_validation_error

        text = f"invalid {exc.title}: {format_validation_error(exc, prefix='').lstrip('.')}"
    elif yaml is not None and isinstance(exc, yaml.YAMLError):
        from upkeep.config_file import _yaml_error

        text = str(_yaml_error("YAML", exc))
    elif sa_exc is not None and isinstance(exc, sa_exc.OperationalError):
        orig = getattr(exc, "orig", None)
        reason = str(orig or exc).strip().splitlines()[0] if str(orig or exc).strip() else type(exc).__name__
        return "error: database error: " + redact_url_password(reason) + " (check UPKEEP_DATABASE_URL)"
    else:
        return None
    return "error: " + redact_url_password(" ".join(text.split()))


class ListingGroup(TyperGroup):
    """A group whose help lists each command with its first sentence whole, wrapped (click's
    listing cuts it at the terminal's width)."""

    def listed(self, ctx: typer.Context, name: str) -> Any:
        return self.get_command(ctx, name)

    def format_commands(self, ctx: typer.Context, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.listed(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class UpkeepGroup(ListingGroup):
    """The root group: commands loaded on use; user errors become one line on stderr and exit 2."""

    def __init__(self, **attrs: Any):
        super().__init__(**attrs)
        self.commands = LazyCommands(self.commands)

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(self.commands)

    def listed(self, ctx: typer.Context, name: str) -> Any:
        commands = self.commands
        assert isinstance(commands, LazyCommands)
        return commands.help_of(name)

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            line = _user_error_line(exc)
            if line is None:
                raise
            common.err_console.print(line, markup=False, soft_wrap=True)
            raise typer.Exit(2) from None
        finally:
            obj = ctx.obj
            if isinstance(obj, State):
                obj.close()


app = typer.Typer(
    cls=UpkeepGroup,
    name="upkeep",
    help="Self-hosted maintenance platform: scheduled maintenance tasks, handlers, CLI, API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _global(
    ctx: typer.Context,
    config: str = typer.Option(
        None,
        "--config",
        "-c",
        metavar="PATH",
        help="upkeep.yaml (default: $UPKEEP_CONFIG, else ./upkeep.yaml, ~/.config/upkeep/upkeep.yaml, "
        "/etc/upkeep/upkeep.yaml)",
    ),
    database_url: str = typer.Option(
        None, "--database-url", metavar="URL", help="SQLAlchemy URL of the store (default: $UPKEEP_DATABASE_URL)"
    ),
    log_level: str = typer.Option("WARNING", "--log-level", help="Log level of upkeep's own logging"),
) -> None:
    from upkeep.runtime import configure_logging

    configure_logging(log_level)
    ctx.obj = State(config=config, database_url=database_url)


def version() -> None:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        typer.echo(f"upkeep {installed('upkeep')}")
    except PackageNotFoundError:
        typer.echo("upkeep (not installed: running from a source tree)")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``argv`` None). Called with ``argv``, it raises ``SystemExit`` as
    any Typer app does; as the console script, a command ends through ``_exit_without_teardown``
    once nothing but its own thread is left running (and always after running work in a foreground
    worker, whose exit handler stops it)."""
    try:
        app(args=argv, prog_name="upkeep")
    except KeyboardInterrupt:
        common.err_console.print("error: interrupted", markup=False)
        sys.exit(130)
    except SystemExit as exc:
        run = sys.modules.get("upkeep.cli.run")
        ran_work = run is not None and run.ran_in_foreground()
        if argv is None and isinstance(exc.code, int | None) and (ran_work or _alone()):
            _exit_without_teardown(exc.code or 0)
        raise


def _alone() -> bool:
    """Whether no thread but this one and daemon threads runs: none the normal exit would wait for."""
    import threading

    return all(t.daemon or t is threading.current_thread() for t in threading.enumerate())


def _exit_without_teardown(code: int) -> NoReturn:
    """End the process once its work is done and recorded, without the interpreter's teardown, which
    frees the few hundred modules a command imported one by one: about 0.1 s of CPU after ``upkeep
    run``, a fifth of ``upkeep tasks list``. The exit handlers run first (they stop a foreground
    worker, flush logging, remove temporary directories), then the output is flushed; the store was
    closed when the command ended (``UpkeepGroup.invoke``)."""
    import atexit
    import contextlib
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # a reader that went away (``| head``) changes no exit code
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()

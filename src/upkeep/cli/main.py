"""The ``upkeep`` command: ``upkeep.cli.main:main``.

Every error a user can cause (``UserError``, an invalid config or YAML file, an unreachable
database) becomes exactly one line on stderr, ``error: <message> (<hint>)``, and exit code 2; no
traceback. Exit codes: 0 success (a warning outcome included), 1 a run failed, timed out, was
cancelled or found something critical, 2 usage, config or connection error before any run.

Command groups live in one module each. Optional groups written elsewhere (backups, notify,
report) are mounted from ``OPTIONAL_GROUPS`` when their module imports.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any, NoReturn

import typer
import yaml
from pydantic import ValidationError
from typer.core import TyperGroup

from upkeep.cli import commands, cron, db, doctor, handlers, keys, run, runs, schedule, tasks
from upkeep.cli.common import State, err_console
from upkeep.errors import UserError

log = logging.getLogger(__name__)

# (command name, module, Typer app attribute): optional groups mounted when the module imports.
OPTIONAL_GROUPS: list[tuple[str, str, str]] = [
    ("backups", "upkeep.cli.backups", "backups_app"),
    ("notify", "upkeep.cli.notify", "notify_app"),
    ("report", "upkeep.cli.report", "report_app"),
    ("heartbeats", "upkeep.cli.heartbeats", "heartbeats_app"),
    ("users", "upkeep.cli.users", "users_app"),
    ("checklists", "upkeep.cli.checklists", "checklists_app"),
    ("alerts", "upkeep.cli.alerts", "alerts_app"),
]


def error_line(exc: BaseException) -> str:
    """One line for an error a user can fix; never a traceback, never a password."""
    from upkeep.config_file import _yaml_error
    from upkeep.engine.registry import format_validation_error
    from upkeep.secrets import redact_url_password

    if isinstance(exc, UserError):
        text = str(exc)
    elif isinstance(exc, ValidationError):
        text = f"invalid {exc.title}: {format_validation_error(exc, prefix='').lstrip('.')}"
    elif isinstance(exc, yaml.YAMLError):
        text = str(_yaml_error("YAML", exc))
    else:
        text = f"{type(exc).__name__}: {exc}"
    return "error: " + redact_url_password(" ".join(text.split()))


def _database_error(exc: BaseException) -> str:
    from upkeep.secrets import redact_url_password

    orig = getattr(exc, "orig", None)
    reason = str(orig or exc).strip().splitlines()[0] if str(orig or exc).strip() else type(exc).__name__
    return "error: database error: " + redact_url_password(reason) + " (check UPKEEP_DATABASE_URL)"


class UpkeepGroup(TyperGroup):
    """The root group: turns user errors into one line on stderr and exit code 2."""

    def invoke(self, ctx: typer.Context) -> Any:
        import sqlalchemy.exc

        try:
            return super().invoke(ctx)
        except (UserError, ValidationError, yaml.YAMLError) as exc:
            err_console.print(error_line(exc), markup=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except sqlalchemy.exc.OperationalError as exc:
            err_console.print(_database_error(exc), markup=False, soft_wrap=True)
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


commands.register(app)


@app.command("version")
def version() -> None:
    """Print upkeep's version (needs no config file)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        typer.echo(f"upkeep {installed('upkeep')}")
    except PackageNotFoundError:
        typer.echo("upkeep (not installed: running from a source tree)")


app.command("run", help=run.HELP)(run.run)
app.add_typer(tasks.app, name="tasks", help="List, show, create, edit, enable, disable, trigger tasks.")
app.add_typer(runs.app, name="runs", help="List, show, follow and cancel runs.")
app.add_typer(handlers.app, name="handlers", help="The registered handler types and their config.")
app.add_typer(schedule.app, name="schedule", help="Explain schedule expressions.")
app.add_typer(db.app, name="db", help="Store schema migrations.")
app.add_typer(cron.app, name="cron", help="A crontab for the tiers; a crontab into upkeep.yaml (import).")
app.add_typer(keys.app, name="keys", help="API keys.")
app.command("doctor", help="Check config, store, binaries, permissions and time-zone data.")(doctor.doctor)


def mount_optional_groups(target: typer.Typer, groups: list[tuple[str, str, str]] = OPTIONAL_GROUPS) -> list[str]:
    """Mount the optional command groups whose module imports; returns the names mounted."""
    mounted = []
    for name, module_name, attr in groups:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if exc.name != module_name:  # the module is there but broken: say so, keep the CLI usable
                log.warning("command group %r is unavailable: %s", name, exc)
            continue
        sub = getattr(module, attr)
        target.add_typer(sub, name=name, help=sub.info.help or (module.__doc__ or "").strip().splitlines()[0])
        mounted.append(name)
    return mounted


mount_optional_groups(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``argv`` None). Called with ``argv``, it raises ``SystemExit`` as
    any Typer app does; as the console script, a command that ran work in a foreground worker ends
    through ``_exit_without_teardown``."""
    try:
        app(args=argv, prog_name="upkeep")
    except KeyboardInterrupt:
        err_console.print("error: interrupted", markup=False)
        sys.exit(130)
    except SystemExit as exc:
        if argv is None and run.ran_in_foreground() and isinstance(exc.code, int | None):
            _exit_without_teardown(exc.code or 0)
        raise


def _exit_without_teardown(code: int) -> NoReturn:
    """End the process once its work is done and recorded, without the interpreter's teardown: after
    ``upkeep run`` that frees the few hundred modules it imported one by one, about 0.1 s of CPU. The
    exit handlers run first (they stop the worker process and flush logging), then the output."""
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

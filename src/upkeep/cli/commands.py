"""Top-level commands: ``init``, ``apply``, ``export``, ``serve``, ``scheduler``, ``worker`` (their
help is in ``upkeep.cli.main.COMMANDS``)."""

from __future__ import annotations

from pathlib import Path

import typer

from upkeep.cli.common import actor, echo, print_json, state
from upkeep.errors import UserError


def init(
    ctx: typer.Context,
    force: bool = typer.Option(False, "--force", help="Overwrite an existing upkeep.yaml"),
    template: str = typer.Option(
        "default", "--template", help="default, or runbooks: also the daily to yearly tasks and checklists"
    ),
) -> None:
    from upkeep.app.keys import first_admin_key
    from upkeep.config_file import config_candidates, render_template
    from upkeep.private import ADMIN_KEY_FILE, PRIVATE

    st = state(ctx)
    path = config_candidates(st.config)[0][1]  # --config, UPKEEP_CONFIG or ./upkeep.yaml
    render_template(Path("."), template)  # an unknown template fails before anything is written
    if path.exists() and not force:
        raise UserError(f"{path} exists already", hint="edit it, or pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    from upkeep.settings import Settings

    data_dir = Settings(config=path).resolved_data_dir  # beside the file unless UPKEEP_DATA_DIR says
    text = render_template(data_dir, template)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    echo(f"wrote {path}")
    st._settings = None
    settings = st.settings
    PRIVATE.mkdir(settings.resolved_data_dir)
    store = st.store(upgrade=True)
    echo(f"store ready: {settings.resolved_data_dir if settings.is_sqlite else 'database'} (schema current)")
    key_file = settings.resolved_data_dir / ADMIN_KEY_FILE
    token = first_admin_key(store, key_file)
    if token is None:
        echo("an admin API key exists already; no new key created (`upkeep keys create` makes another)")
    else:
        echo(f"admin API key (shown once; also in {key_file}, mode 600):")
        echo(f"  {token}")
    echo("next: `upkeep apply --dry-run` to preview, `upkeep apply`, then `upkeep serve`")


def apply(
    ctx: typer.Context,
    file: Path = typer.Option(None, "--file", "-f", help="The file to apply (default: the config file)"),
    prune: bool = typer.Option(False, "--prune", help="Delete file-made tasks that are no longer in the file"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the diff; write nothing"),
    as_json: bool = typer.Option(False, "--json", help="Print the diff as JSON"),
) -> None:
    from upkeep.app.config import apply_file

    st = state(ctx)
    source = file or st.settings.config_path
    _check_file(source)

    diff = apply_file(
        st.settings,
        st.store(),
        actor=actor(),
        prune=prune,
        dry_run=dry_run,
        path=source,
        echo=(lambda line: None) if as_json else echo,
    )
    if as_json:
        print_json(diff.as_dict())


def export(
    ctx: typer.Context,
    output: Path = typer.Option(None, "--output", "-o", help="Write here instead of stdout"),
    file_only: bool = typer.Option(False, "--file-only", help="Only tasks made by the config file"),
) -> None:
    from upkeep.app.config import export_config
    from upkeep.config_file import load_config

    st = state(ctx)
    server = None
    if st.settings.config_path.exists():
        server = load_config(st.settings.config_path).model.server or None
    text = export_config(st.store(), file_only=file_only, server=server)
    if output:
        tmp = output.with_name(output.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(output)
        echo(f"wrote {output}")
    else:
        typer.echo(text, nl=False)


def serve(
    ctx: typer.Context,
    host: str = typer.Option(None, "--host", help="Bind address (default: settings host, 127.0.0.1)"),
    port: int = typer.Option(None, "--port", help="Port (default: settings port, 8750)"),
    no_worker: bool = typer.Option(False, "--no-worker", help="Do not execute runs in this process"),
    no_scheduler: bool = typer.Option(False, "--no-scheduler", help="Do not run the scheduler here"),
    log_level: str = typer.Option("INFO", "--log-level", help="Log level"),
    access_log: bool = typer.Option(
        False, "--access-log", help="Log every HTTP request (also server.access_log, UPKEEP_ACCESS_LOG)"
    ),
) -> None:
    from upkeep.runtime import configure_logging
    from upkeep.runtime import serve as run_serve

    configure_logging(log_level)
    settings = state(ctx).settings
    _check_file(settings.config_path)
    run_serve(
        settings,
        host=host or settings.host,
        port=port or settings.port,
        worker=not no_worker,
        scheduler=not no_scheduler,
        access_log=access_log,
    )


def scheduler(ctx: typer.Context, log_level: str = typer.Option("INFO", "--log-level", help="Log level")) -> None:
    from upkeep.runtime import configure_logging, run_scheduler

    configure_logging(log_level)
    run_scheduler(state(ctx).settings)


def worker(
    ctx: typer.Context,
    queues: str = typer.Option(None, "--queues", "-Q", help="Comma-separated queues (default: all)"),
    concurrency: int = typer.Option(None, "--concurrency", help="Worker processes (default: worker_processes)"),
    log_level: str = typer.Option("INFO", "--log-level", help="Log level"),
) -> None:
    from upkeep.runtime import configure_logging, run_worker

    settings = state(ctx).settings
    if concurrency is not None and concurrency < 1:
        raise UserError("--concurrency must be at least 1", field="concurrency")
    configure_logging(log_level)
    names = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    run_worker(settings, queues=names, concurrency=concurrency)


def _check_file(path: Path) -> None:
    """Every target, task, heartbeat monitor and silence of the file is valid before the store is even opened."""
    from upkeep.app.heartbeats import validate_heartbeats
    from upkeep.app.silence_file import validate as validate_silences
    from upkeep.config_file import load_config, validate_targets, validate_tasks

    loaded = load_config(path)
    validate_targets(loaded)
    validate_tasks(loaded)
    validate_heartbeats(loaded.model.heartbeats, loaded.path)
    validate_silences(loaded)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("apply")(apply)
    app.command("export")(export)
    app.command("serve")(serve)
    app.command("scheduler")(scheduler)
    app.command("worker")(worker)

"""``upkeep backups list|show|verify|restore|drill|estimate``: a thin Typer sub-app over the backup catalog.

Listing reads the catalog (records domain ``backup``); ``verify``, ``restore`` and ``drill`` run
``backup.verify`` / ``backup.restore`` / ``backup.drill`` in the foreground like ``upkeep run``,
streaming events; ``estimate`` reads the drill and verify history.
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Column, Table

from upkeep.clock import utcnow
from upkeep.errors import UserError

backups_app = typer.Typer(no_args_is_help=True)


def _store(ctx: typer.Context):
    from upkeep.cli.common import state

    return state(ctx).store()


def _run(ctx: typer.Context, task_type: str, config: dict, dry_run: bool, confirm: bool) -> None:
    from upkeep.cli.common import state
    from upkeep.cli.run import run_handler_now

    raise typer.Exit(run_handler_now(state(ctx), task_type, config, dry_run=dry_run, confirm=confirm))


def _fail(exc: UserError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


def _age(hours: float) -> str:
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


@backups_app.command("list")
def list_cmd(
    ctx: typer.Context,
    source: str | None = typer.Option(None, "--source", "-s", help="Only this source."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List catalogued backups, newest first."""
    now = utcnow()
    from upkeep.app.backups import catalog_rows

    rows = catalog_rows(_store(ctx), source, now)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    console = Console()
    wide = console.width >= 100  # the checksum prefix only where it fits (`backups show` has it whole)
    # ids and sources are what `backups restore` takes: never cut, whatever the terminal's width
    table = Table(
        Column("id", no_wrap=True, min_width=max((len(r["id"]) for r in rows), default=2)),
        Column("source", no_wrap=True, min_width=max((len(r["source"]) for r in rows), default=6)),
        *(
            Column(name, overflow="fold")
            for name in ("created", "age", "size", *(["sha256"] if wide else []), "status")
        ),
    )
    styles = {"verified": "green", "broken": "bold red", "created": "yellow"}
    for r in rows:
        status = r["status"] or "-"
        table.add_row(
            r["id"],
            r["source"],
            r["created_at"][:16].replace("T", " "),
            _age(r["age_hours"]),
            _size(r["size"]),
            *([(r["sha256"] or "")[:12]] if wide else []),
            f"[{styles.get(status, '')}]{status}[/]",
        )
    console.print(table)


@backups_app.command("show")
def show_cmd(
    ctx: typer.Context,
    backup_id: str = typer.Argument(..., help="A backup id (or source/id)."),
    source: str | None = typer.Option(None, "--source", "-s"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show one backup: manifest, files, verification."""
    from upkeep.app.backups import find_backup

    try:
        entry = find_backup(_store(ctx), backup_id, source)
    except UserError as exc:
        _fail(exc)
        return
    if as_json:
        typer.echo(json.dumps(entry, indent=2, default=str))
        return
    console = Console()
    m = entry["manifest"]
    console.print(f"[bold]{entry['source']}/{entry['id']}[/] ({entry['type']}, {entry['status']})")
    for label, value in [
        ("path", entry["path"]),
        ("size", f"{_size(m['size'])} (raw {_size(m['raw_size'])})"),
        ("sha256", m["sha256"]),
        ("compression", m["compression"]),
        ("encryption key id", m.get("encryption_key_id") or "-"),
        ("server version", m.get("server_version") or "-"),
        ("created", entry["created_at"]),
        ("verified at", entry.get("verified_at") or "never"),
        ("copies", ", ".join(c["path"] for c in entry.get("copies", [])) or "-"),
        ("off-site", ", ".join(f"{r} ({c.get('status')})" for r, c in (entry.get("offsite") or {}).items()) or "-"),
        ("local files", "removed by retention" if entry.get("local_deleted") else "present"),
    ]:
        console.print(f"  {label:18} {value}")
    for check in (entry.get("verification") or {}).get("checks", []):
        mark = "[green]ok[/]" if check["ok"] else "[red]FAIL[/]"
        console.print(f"  {mark} {check['check']}: {check['message']}")


@backups_app.command("verify")
def verify_cmd(
    ctx: typer.Context,
    which: str = typer.Argument("latest", help="latest | all | a backup id"),
    source: str | None = typer.Option(None, "--source", "-s"),
) -> None:
    """Verify backups now (checksums, test restore, row counts)."""
    config: dict[str, Any] = {"which": which}
    if source:
        config["source"] = source
    _run(ctx, "backup.verify", config, False, False)


@backups_app.command("restore")
def restore_cmd(
    ctx: typer.Context,
    backup: str = typer.Argument("latest", help="A backup id, or latest (the newest verified)."),
    source: str | None = typer.Option(None, "--source", "-s"),
    target_database: str | None = typer.Option(None, "--target-database", help="Restore into this database."),
    create: bool = typer.Option(False, "--create", help="The target must be new; it is created."),
    target_path: str | None = typer.Option(None, "--target-path", help="File/directory for sqlite/redis/files."),
    allow_unverified: bool = typer.Option(False, "--allow-unverified"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and change nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Confirm this destructive restore."),
) -> None:
    """Restore a backup (dry-run first; a real restore needs --yes)."""
    config: dict[str, Any] = {"backup": backup}
    for key, value in (("source", source), ("target_database", target_database), ("target_path", target_path)):
        if value:
            config[key] = value
    if create:
        config["create"] = True
    if allow_unverified:
        config["allow_unverified"] = True
    _run(ctx, "backup.restore", config, dry_run, yes)


@backups_app.command("drill")
def drill_cmd(
    ctx: typer.Context,
    sources: list[str] = typer.Argument(None, help="Sources to drill (default every catalogued source)."),
    rto: str | None = typer.Option(None, "--rto", help="Recovery time objective, e.g. 30m."),
    rpo: str | None = typer.Option(None, "--rpo", help="Recovery point objective, e.g. 26h."),
    from_repository: str | None = typer.Option(None, "--from-repository", help="Drill from this off-site copy."),
) -> None:
    """Run a disaster-recovery drill now: restore, check, record RTO and RPO."""
    from upkeep.app.backups import catalogued_sources

    chosen = list(sources or []) or catalogued_sources(_store(ctx))
    if not chosen:
        _fail(UserError("no backups in the catalog to drill", hint="run `upkeep run backup.create` first"))
    config: dict[str, Any] = {"sources": chosen}
    for key, value in (("rto_objective", rto), ("rpo_objective", rpo), ("from_repository", from_repository)):
        if value:
            config[key] = value
    _run(ctx, "backup.drill", config, False, False)


@backups_app.command("estimate")
def estimate_cmd(
    ctx: typer.Context,
    source: str = typer.Argument(..., help="A catalogued source."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Predict how long restoring SOURCE's newest backup takes, from its drill and verify history."""
    from upkeep.app.backups import estimate_restore

    try:
        out = estimate_restore(_store(ctx), source)
    except UserError as exc:
        _fail(exc)
        return
    typer.echo(json.dumps(out, indent=2) if as_json else out["message"])

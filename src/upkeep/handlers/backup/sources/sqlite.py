"""SQLite backups through the online backup API (a consistent copy of a live database)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from upkeep.errors import ConfigError, UserError
from upkeep.handlers.backup.checks import check, compare_counts
from upkeep.handlers.backup.sources.base import Source


def layout(config) -> tuple[str, str]:
    return ".sqlite3", config.compression


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    return {
        n: int(conn.execute(f'SELECT count(*) FROM "{n.replace(chr(34), chr(34) * 2)}"').fetchone()[0]) for n in names
    }


def _online_copy(source: Path, target: Path) -> None:
    if not source.is_file():
        raise UserError(f"SQLite database {source} does not exist", field="config.source.path")
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise UserError(f"cannot open SQLite database {source}: {exc}") from None
    dst = sqlite3.connect(target)
    try:
        src.backup(dst, pages=4096)
    except sqlite3.DatabaseError as exc:
        raise UserError(f"SQLite backup of {source} failed: {exc}") from None
    finally:
        dst.close()
        src.close()


def create(ctx, source, config, new_writer, work_dir: Path) -> dict[str, Any]:
    path = Path(source.spec["path"])
    copy = work_dir / "copy.sqlite3"
    _online_copy(path, copy)
    conn = sqlite3.connect(copy)
    try:
        counts = _counts(conn)
        version = sqlite3.sqlite_version
    finally:
        conn.close()
    writer = new_writer("")
    with open(copy, "rb") as fh:
        writer.copy_from(fh, ctx.check_cancelled)
    writer.finish()
    copy.unlink()
    return {
        "format": "sqlite",
        "row_counts": counts,
        "server_version": version,
        "tool_versions": {"sqlite": version},
        "database": str(path),
    }


def verify(ctx, entry: dict[str, Any], raw: Path) -> list[dict[str, Any]]:
    try:
        conn = sqlite3.connect(f"file:{raw}?mode=ro", uri=True)
        try:
            result = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            counts = _counts(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return [check("integrity", False, f"not a readable SQLite database: {exc}")]
    ok = result == ["ok"]
    out = [check("integrity", ok, "integrity_check ok" if ok else "integrity_check: " + "; ".join(result[:5]))]
    out.append(compare_counts(entry["manifest"].get("row_counts") or {}, counts))
    return out


def restore_plan(entry: dict[str, Any], config) -> dict[str, Any]:
    target = Path(config.target_path or entry["manifest"].get("database") or "")
    if not str(target):
        raise UserError("restoring a SQLite backup needs target_path", field="config.target_path")
    exists = target.exists()
    if config.create and exists:
        raise UserError(f"{target} exists and create: true asks for a new file", field="config.target_path")
    steps = []
    if exists and config.safety_backup:
        steps.append(f"take a safety backup of {target}")
    steps.append(f"{'overwrite' if exists else 'create'} {target} from backup {entry['id']} (online backup API)")
    return {
        "target_path": str(target),
        "exists": exists,
        "drops": str(target) if exists else None,
        "creates": None if exists else str(target),
        "steps": steps,
    }


def restore(ctx, entry: dict[str, Any], raw: Path, plan: dict[str, Any]) -> list[dict[str, Any]]:
    target = Path(plan["target_path"])
    src = sqlite3.connect(f"file:{raw}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        counts = _counts(dst)
    finally:
        dst.close()
        src.close()
    return [compare_counts(entry["manifest"].get("row_counts") or {}, counts)]


class SqliteSource(Source):
    type = "sqlite"

    @classmethod
    def check_spec(cls, spec: dict[str, Any], field: str) -> None:
        if not spec.get("path") and spec.get("url"):
            from upkeep.handlers.db.targets import sqlite_path

            spec["path"] = str(sqlite_path(str(spec["url"])))
        if not spec.get("path"):
            raise ConfigError("a sqlite source needs path", field=f"{field}.path")

    @classmethod
    def default_name(cls, spec: dict[str, Any]) -> str:
        return Path(str(spec["path"])).stem

    def layout(self, config) -> tuple[str, str]:
        return layout(config)

    def create(self, ctx, config, new_writer, work_dir: Path, never_include: list[Path]) -> dict[str, Any]:
        return create(ctx, self, config, new_writer, work_dir)

    @classmethod
    def verify(cls, ctx, entry, raw, config, work_dir, server, on_restored=None):
        return verify(ctx, entry, raw)

    @classmethod
    def restore_plan(cls, ctx, entry, config, server):
        return restore_plan(entry, config)

    @classmethod
    def restore(cls, ctx, entry, raw, plan, config, server, work_dir):
        return restore(ctx, entry, raw, plan)

    @classmethod
    def safety_spec(cls, entry, plan, server):
        return {"type": "sqlite", "path": plan["target_path"]}

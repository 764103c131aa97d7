"""SQLite maintenance for ``db.*`` handlers: VACUUM, ANALYZE, ``PRAGMA optimize``, integrity check.

Works on any SQLite file, upkeep's own store included, while other connections use it: every
statement waits up to ``busy_timeout`` seconds for a lock instead of failing at once. VACUUM
rewrites the file (it needs free disk space of about the database's size) and briefly blocks
writers; it never changes data.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from upkeep.engine.context import RunContext
from upkeep.errors import ConnectionFailed
from upkeep.handlers.db.targets import sqlite_path
from upkeep.handlers.findings import outcome_of

INTEGRITY_MAX_ERRORS = 100


def file_size(path: Path) -> int:
    """Database file plus its WAL, in bytes."""
    total = 0
    for p in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(OSError):
            total += p.stat().st_size
    return total


@contextlib.contextmanager
def open_db(path: Path, busy_timeout: float = 30.0, readonly: bool = False) -> Iterator[sqlite3.Connection]:
    """An autocommit connection to an existing SQLite file (never creates one)."""
    if not path.is_file():
        raise ConnectionFailed(
            f"SQLite database {path} does not exist",
            hint="check the sqlite:/// path of the target (an absolute path needs four slashes)",
        )
    mode = "ro" if readonly else "rw"
    try:
        conn = sqlite3.connect(f"file:{path}?mode={mode}", uri=True, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise ConnectionFailed(f"cannot open SQLite database {path}: {exc}") from None
    try:
        yield conn
    finally:
        conn.close()


def stats(conn: sqlite3.Connection, path: Path) -> dict[str, Any]:
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    page_count = conn.execute("PRAGMA page_count").fetchone()[0]
    freelist = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return {
        "bytes": file_size(path),
        "page_size": page_size,
        "page_count": page_count,
        "freelist_pages": freelist,
        "free_ratio": round(freelist / page_count, 4) if page_count else 0.0,
        "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
    }


def integrity_check(conn: sqlite3.Connection, quick: bool = False) -> list[str]:
    """Problems found by ``PRAGMA integrity_check`` (or ``quick_check``) and ``foreign_key_check``.

    An empty list means the database is sound. A file too damaged to be read yields one problem.
    """
    pragma = "quick_check" if quick else "integrity_check"
    problems: list[str] = []
    try:
        rows = conn.execute(f"PRAGMA {pragma}({INTEGRITY_MAX_ERRORS})").fetchall()
        problems += [str(r[0]) for r in rows if str(r[0]).lower() != "ok"]
        for table, rowid, parent, _fk in conn.execute("PRAGMA foreign_key_check").fetchall():
            problems.append(f"foreign key violation: {table} rowid {rowid} references missing {parent} row")
    except sqlite3.DatabaseError as exc:
        problems.append(f"database cannot be read: {exc}")
    return problems


def vacuum(conn: sqlite3.Connection) -> None:
    conn.execute("VACUUM")


def analyze(conn: sqlite3.Connection) -> None:
    conn.execute("ANALYZE")


def optimize(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA optimize")


def reindex(conn: sqlite3.Connection) -> None:
    conn.execute("REINDEX")


def tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    return [r[0] for r in rows]


def sqlite_result(
    verb: str,
    path,
    before: dict,
    after: dict | None,
    findings: list[dict],
    ctx: RunContext,
    actions: list[str],
) -> dict:
    if ctx.dry_run:
        summary = f"dry run: would run {', '.join(actions)} on {path} ({before['bytes']:,} bytes)"
    elif after is None:
        summary = f"{verb} not done on {path}: {findings[0]['message'] if findings else 'see findings'}"
    else:
        summary = f"{verb} {path}: {before['bytes']:,} -> {after['bytes']:,} bytes"
    return {
        "outcome": outcome_of(findings),
        "summary": summary,
        "target": str(path),
        "dry_run": ctx.dry_run,
        "engine": "sqlite",
        "actions": actions,
        "before": before,
        "after": after,
        "findings": findings,
    }


def sqlite_maintain(
    ctx: RunContext,
    target: dict,
    verb: str,
    *,
    with_vacuum: bool,
    with_analyze: bool,
    check: str = "off",
    with_reindex: bool = False,
) -> dict:
    path = sqlite_path(target)
    pragma = {"full": "PRAGMA integrity_check", "quick": "PRAGMA quick_check"}.get(check)
    actions = (
        ([pragma] if pragma else [])
        + (["REINDEX"] if with_reindex else [])
        + (["VACUUM"] if with_vacuum else [])
        + (["ANALYZE"] if with_analyze else [])
        + ["PRAGMA optimize"]
    )
    findings: list[dict] = []
    with open_db(path) as conn:
        before = stats(conn, path)
        if ctx.dry_run:
            for action in actions:
                ctx.info("plan", f"would run {action} on {path}", action=action, path=str(path))
            return sqlite_result(verb, path, before, None, findings, ctx, actions)
        if pragma:
            problems = integrity_check(conn, quick=check == "quick")
            if problems:
                for p in problems:
                    findings.append({"severity": "critical", "item": str(path), "message": p})
                ctx.error("integrity", f"{path} failed its integrity check: not running {verb}", problems=problems)
                return sqlite_result(verb, path, before, None, findings, ctx, actions)
        ctx.check_cancelled()
        if with_reindex:
            reindex(conn)
        if with_vacuum:
            vacuum(conn)
        if with_analyze:
            analyze(conn)
        optimize(conn)
        after = stats(conn, path)
    ctx.info("sqlite_done", f"{verb} {path}", before=before, after=after)
    return sqlite_result(verb, path, before, after, findings, ctx, actions)

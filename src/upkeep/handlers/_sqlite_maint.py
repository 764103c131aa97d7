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

from upkeep.errors import ConnectionFailed

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

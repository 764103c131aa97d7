"""Only the lifecycle package changes ``runs`` (migrations aside).

Read from the source: every INSERT, UPDATE or DELETE on the runs table (SQLAlchemy Core, ORM
constructors, raw SQL text) and every assignment to a column only runs have, outside
``upkeep/engine/lifecycle``, is reported with its file and line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import upkeep

SRC = Path(upkeep.__file__).parent
OWNER = SRC / "engine" / "lifecycle"
MIGRATIONS = SRC / "store" / "migrations"
WRITES = {"insert", "update", "delete"}
RAW_SQL = re.compile(r"\b(update|insert\s+into|delete\s+from)\s+[\"`]?runs\b", re.IGNORECASE)
# columns no other table has: setting one on an object is a write to a run
RUN_ONLY_COLUMNS = {
    "cancel_requested_at",
    "heartbeat_at",
    "deadline_at",
    "worker_pid",
    "worker_pgid",
    "blocked_by_run_id",
    "event_count",
}


def _names_runs(node: ast.AST, aliases: set[str]) -> bool:
    """``Run``, ``Run.__table__``, the Core table ``runs`` (``tables.runs``), or a module name bound
    to one of them."""
    if isinstance(node, ast.Name):
        return node.id in ("Run", "runs") or node.id in aliases
    if not isinstance(node, ast.Attribute):
        return False
    if node.attr == "runs":
        return isinstance(node.value, ast.Name) and node.value.id == "tables"
    return node.attr == "__table__" and _names_runs(node.value, aliases)


def writes_to_runs(source: str) -> list[tuple[int, str]]:
    """Where ``source`` changes the runs table: (line, what)."""
    tree = ast.parse(source)
    aliases = {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and _names_runs(node.value, set())
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in WRITES and node.args and _names_runs(node.args[0], aliases):
                found.append((node.lineno, f"{name}() of runs"))
            elif name in WRITES and isinstance(func, ast.Attribute) and _names_runs(func.value, aliases):
                found.append((node.lineno, f"runs.{name}()"))
            elif isinstance(func, ast.Name) and func.id == "Run":
                found.append((node.lineno, "Run(...) built to be added"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and RAW_SQL.search(node.value):
            found.append((node.lineno, "SQL text writing runs"))
        elif isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr in RUN_ONLY_COLUMNS:
                    found.append((node.lineno, f"assigns .{target.attr}"))
    return sorted(found)


def test_no_module_outside_the_lifecycle_writes_runs():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.is_relative_to(OWNER) or path.is_relative_to(MIGRATIONS):
            continue
        for line, what in writes_to_runs(path.read_text()):
            offenders.append(f"{path.relative_to(SRC.parent)}:{line}: {what}")
    assert offenders == []


def test_the_lifecycle_is_where_runs_are_written():
    """The check finds writes where they are: it is not blind."""
    found = [what for path in OWNER.rglob("*.py") for _, what in writes_to_runs(path.read_text())]
    assert "update() of runs" in found and "insert() of runs" in found and "delete() of runs" in found


def test_each_form_of_write_is_found():
    source = """
import sqlalchemy as sa
from upkeep.store.models import Run
RUNS = Run.__table__
sa.update(Run).values(status="failed")
sa.insert(RUNS).values(status="pending")
RUNS.delete().where(RUNS.c.id == 1)
session.add(Run(task_type="x"))
conn.exec_driver_sql("UPDATE runs SET status = 'failed'")
run.cancel_requested_at = now
sa.update(Other).values(x=1)
sa.select(Run).where(Run.id == 1)
sa.delete(runs).where(runs.c.id == 1)
sa.update(tables.runs).values(status="failed")
sa.select(runs)
"""
    assert [line for line, _ in writes_to_runs(source)] == [5, 6, 7, 8, 9, 10, 13, 14]

"""The targets inventory as alerting sees it: each entry is ``KIND.NAME`` (``services.api``,
``databases.main``), may say what it depends on, and a task may say which entries its runs disturb.

- ``depends_on: [databases.main]`` on a target entry: while a parent is down, the child's failures
  are recorded as caused by it and alert as part of the parent's alert. It belongs to alerting, not
  to the kind's handlers: ``handler_entry`` leaves it out of what they read.
- ``affects: {services: [api], databases: [main], settle: 10m}`` on a task; a task holding lock
  ``db:NAME`` affects ``databases.NAME`` too when that target exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

ALERTING_KEYS = ("depends_on",)  # keys of a target entry that alerting reads and handlers never see
AFFECT_KINDS = ("services", "databases")  # the kinds health.check observes
DEFAULT_SETTLE_SECONDS = 600.0
LOCK_PREFIX = "db:"


def target_id(kind: str, name: str) -> str:
    return f"{kind}.{name}"


def handler_entry(entry: Any) -> Any:
    """A target entry as its kind's handlers and validation see it (alerting keys left out)."""
    if isinstance(entry, Mapping) and any(key in entry for key in ALERTING_KEYS):
        return {k: v for k, v in entry.items() if k not in ALERTING_KEYS}
    return entry


def known_ids(targets: Mapping[str, Mapping[str, Any]]) -> set[str]:
    return {target_id(kind, name) for kind, entries in (targets or {}).items() for name in (entries or {})}


def dependencies(targets: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """``{child id: [parent ids]}`` of every entry with a ``depends_on``."""
    out: dict[str, list[str]] = {}
    for kind, entries in (targets or {}).items():
        for name, entry in (entries or {}).items():
            parents = entry.get("depends_on") if isinstance(entry, Mapping) else None
            if parents:
                out[target_id(kind, name)] = [str(p) for p in parents]
    return out


def dependency_problems(targets: Mapping[str, Mapping[str, Any]]) -> list[tuple[list[str], str, str | None]]:
    """``(path, message, hint)`` of each bad ``depends_on``: not a list of names, an unknown
    target, the target itself, or a cycle. Empty when all are good."""
    known = known_ids(targets)
    problems: list[tuple[list[str], str, str | None]] = []
    graph: dict[str, list[str]] = {}
    for kind, entries in (targets or {}).items():
        for name, entry in (entries or {}).items():
            if not isinstance(entry, Mapping) or "depends_on" not in entry:
                continue
            path = ["targets", kind, name, "depends_on"]
            parents = entry["depends_on"]
            if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
                problems.append((path, "must be a list of target names such as databases.main", None))
                continue
            me = target_id(kind, name)
            for index, parent in enumerate(parents):
                if parent == me:
                    problems.append(([*path, str(index)], f"{parent} cannot depend on itself", None))
                elif parent not in known:
                    hint = f"known: {', '.join(sorted(known))}" if known else "define it under targets: first"
                    problems.append(([*path, str(index)], f"{parent} is not a target (write KIND.NAME)", hint))
            graph[me] = [p for p in parents if p in known and p != me]
    cycle = _cycle(graph)
    if cycle:
        kind, _, name = cycle[0].partition(".")
        problems.append((["targets", kind, name, "depends_on"], f"a cycle: {' → '.join(cycle)}", None))
    return problems


def _cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One cycle of ``graph`` (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for parent in graph.get(node, []):
            if state.get(parent) == 1:
                return [*path[path.index(parent) :], parent]
            if parent not in state:
                found = visit(parent)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def ancestors(node: str, graph: Mapping[str, list[str]]) -> list[str]:
    """Every target ``node`` depends on, directly or through others (nearest first, no repeats)."""
    out: list[str] = []
    queue = list(graph.get(node, []))
    while queue:
        parent = queue.pop(0)
        if parent in out or parent == node:
            continue
        out.append(parent)
        queue.extend(graph.get(parent, []))
    return out


def affected_targets(affects: Mapping[str, Any] | None, locks: Iterable[str], targets: Mapping[str, Any]) -> set[str]:
    """The targets a task's run disturbs: its ``affects``, and ``databases.NAME`` for a lock
    ``db:NAME`` when that target exists."""
    out = set()
    for kind in AFFECT_KINDS:
        out.update(target_id(kind, name) for name in (affects or {}).get(kind) or [])
    databases = (targets or {}).get("databases") or {}
    for lock in locks or []:
        if isinstance(lock, str) and lock.startswith(LOCK_PREFIX) and lock[len(LOCK_PREFIX) :] in databases:
            out.add(target_id("databases", lock[len(LOCK_PREFIX) :]))
    return out


def settle_seconds(affects: Mapping[str, Any] | None) -> float:
    from upkeep.engine.taskspec import parse_duration

    settle = (affects or {}).get("settle")
    return parse_duration(settle) if settle else DEFAULT_SETTLE_SECONDS


def affects_problems(affects: Mapping[str, Any] | None, targets: Mapping[str, Any]) -> list[tuple[list[str], str]]:
    """``(path under the task, message)`` of each ``affects`` name that is not a target."""
    out = []
    for kind in AFFECT_KINDS:
        names = (targets or {}).get(kind) or {}
        for index, name in enumerate((affects or {}).get(kind) or []):
            if name not in names:
                known = ", ".join(sorted(names)) or "none"
                out.append((["affects", kind, str(index)], f"{name!r} is not under targets.{kind} (known: {known})"))
    return out

"""The graph that tasks' ``after:`` draws: checked whole before a change is written.

``edges`` maps each task name to the names its ``after.tasks`` lists (its upstream tasks).
"""

from __future__ import annotations

from upkeep.errors import ConfigError


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A path that comes back to where it started (``[a, b, a]``: a waits for b, b for a), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for upstream in edges.get(name, []):
            if state.get(upstream) == 1:
                return path[path.index(upstream) :] + [upstream]
            if upstream not in state:
                found = visit(upstream, path)
                if found:
                    return found
        path.pop()
        state[name] = 2
        return None

    for name in sorted(edges):
        if name not in state:
            found = visit(name, [])
            if found:
                return found
    return None


class GraphError(ConfigError):
    """An ``after:`` that cannot be written; ``task`` is the task whose ``after:`` to fix."""

    def __init__(self, task: str, message: str, *, hint: str):
        super().__init__(f"task {task!r}: {message}", hint=hint, field="after.tasks")
        self.task = task


def check(edges: dict[str, list[str]], known: set[str]) -> None:
    """Refuse an ``after:`` that names no task, and a cycle (naming its path)."""
    for name in sorted(edges):
        for upstream in edges[name]:
            if upstream not in known:
                raise GraphError(
                    name,
                    f"after.tasks names {upstream!r}, which is no task",
                    hint="name an existing task (`upkeep tasks list`), or create it first",
                )
    cycle = find_cycle(edges)
    if cycle:
        raise GraphError(
            cycle[0],
            f"after.tasks makes a cycle: {' → '.join(reversed(cycle))}",
            hint="a task cannot wait, directly or through others, for its own runs; remove one `after:`",
        )


def downstream(edges: dict[str, list[str]], name: str) -> list[str]:
    """The tasks whose ``after:`` names ``name``."""
    return sorted(task for task, upstream in edges.items() if name in upstream)

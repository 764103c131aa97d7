"""A tiny JSONPath subset for health-check body conditions (no maintained library is installed).

Expression: ``PATH [OPERATOR VALUE]``

- ``PATH``: ``$`` then any of ``.key``, ``["key"]``, ``['key']``, ``[0]``, ``[-1]``
  (e.g. ``$.status``, ``$.checks[0].state``, ``$["db-pool"].free``).
- ``OPERATOR``: ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in``, ``not in``.
- ``VALUE``: a JSON literal (``"healthy"``, ``3``, ``true``, ``null``, ``["ok", "degraded"]``) or a
  single-quoted string (``'healthy'``).

Comparison is by JSON value, never substring: ``$.status == "healthy"`` fails for ``"unhealthy"``.
``<``/``>`` compare numbers only (a string never satisfies them). A bare ``PATH`` asserts the value
exists and is not ``null``/``false``. A missing path fails every condition except ``!=`` and ``not in``
(which also fail: the value must be present to be compared).
"""

from __future__ import annotations

import functools
import json
import operator
import re
from dataclasses import dataclass
from typing import Any

_STEP_RE = re.compile(r"""\.([A-Za-z_][\w-]*)|\[(-?\d+)\]|\["([^"]*)"\]|\['([^']*)'\]""")
_OP_RE = re.compile(r"^(==|!=|<=|>=|<|>)\s*(.+)$|^(not\s+in|in)\s+(.+)$", re.S)
_MISSING = object()

_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


class JsonPathError(ValueError):
    """The expression is not in the supported subset."""


@dataclass(frozen=True)
class Condition:
    expression: str
    path: tuple[str | int, ...]
    op: str | None
    value: Any

    def evaluate(self, document: Any) -> tuple[bool, str]:
        """``(passed, explanation)`` for ``document`` (already decoded JSON)."""
        actual = resolve(document, self.path)
        shown = _path_text(self.path)
        if actual is _MISSING:
            return False, f"{shown} is missing"
        got = json.dumps(actual)[:80]
        if self.op is None:
            ok = actual is not None and actual is not False
            return ok, f"{shown} is {got}"
        if self.op == "==":
            ok = _same(actual, self.value)
        elif self.op == "!=":
            ok = not _same(actual, self.value)
        elif self.op in ("in", "not in"):
            if not isinstance(self.value, list):
                raise JsonPathError(f"{self.expression!r}: `{self.op}` needs a JSON list on the right")
            found = any(_same(actual, item) for item in self.value)
            ok = found if self.op == "in" else not found
        else:
            numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (actual, self.value))
            ok = numbers and _COMPARE[self.op](actual, self.value)
        return ok, f"{shown} is {got}, expected {self.op} {json.dumps(self.value)}"


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == 1.0`` but ``true != 1`` and ``"1" != 1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _path_text(path: tuple[str | int, ...]) -> str:
    out = "$"
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else f".{step}"
    return out


def resolve(document: Any, path: tuple[str | int, ...]) -> Any:
    current = document
    for step in path:
        if isinstance(step, int):
            if not isinstance(current, list) or not -len(current) <= step < len(current):
                return _MISSING
            current = current[step]
        else:
            if not isinstance(current, dict) or step not in current:
                return _MISSING
            current = current[step]
    return current


@functools.lru_cache(maxsize=1024)
def parse(expression: str) -> Condition:
    """Parse ``expression``; raises ``JsonPathError`` naming what is wrong."""
    text = expression.strip()
    if not text.startswith("$"):
        raise JsonPathError(f'{expression!r}: a JSONPath starts with `$` (e.g. `$.status == "healthy"`)')
    pos = 1
    path: list[str | int] = []
    while pos < len(text):
        match = _STEP_RE.match(text, pos)
        if not match:
            break
        key, index, dq, sq = match.groups()
        if index is not None:
            path.append(int(index))
        else:
            path.append(key if key is not None else dq if dq is not None else sq)
        pos = match.end()
    rest = text[pos:].strip()
    if not rest:
        return Condition(expression, tuple(path), None, None)
    op_match = _OP_RE.match(rest)
    if not op_match:
        raise JsonPathError(
            f"{expression!r}: cannot read {rest!r}; supported: $.a.b[0] followed by ==, !=, <, <=, >, >=, "
            "in, not in and a JSON value"
        )
    op = op_match.group(1) or " ".join(op_match.group(3).split())
    literal = (op_match.group(2) or op_match.group(4)).strip()
    return Condition(expression, tuple(path), op, _literal(expression, literal))


def _literal(expression: str, literal: str) -> Any:
    if len(literal) >= 2 and literal[0] == literal[-1] == "'":
        return literal[1:-1]
    try:
        return json.loads(literal)
    except json.JSONDecodeError:
        raise JsonPathError(f'{expression!r}: {literal!r} is not a JSON value (quote strings: "healthy")') from None

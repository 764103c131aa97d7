"""A YAML SafeLoader with a nesting limit, for every YAML upkeep reads from a user.

``ShallowLoader`` parses with libyaml (PyYAML's C parser, about ten times faster than its
Python one: every command reads upkeep.yaml) when PyYAML has it. The Python parser stays the
reference: a document libyaml refuses is parsed again by it, so an error reads as it always did,
and the nesting limit is checked on libyaml's events before it composes (its composer recurses in
C, where no recursion limit stops it).
"""

from __future__ import annotations

import functools
from typing import Any

import yaml

from upkeep.errors import UserError

# deeper than any real config; PyYAML's composer recurses per level and fails with a RecursionError
MAX_NESTING = 100

_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
_LEAF = (yaml.ScalarEvent, yaml.AliasEvent)


class PyShallowLoader(yaml.SafeLoader):
    """SafeLoader that refuses YAML nested more than ``MAX_NESTING`` levels, with a YAML error."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_NESTING} levels deep; flatten the value", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _nesting(text: str | bytes) -> int:
    """How deep the document's nodes nest (as ``PyShallowLoader`` counts), from libyaml's events
    (raises its errors)."""
    depth = deepest = 0
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        if isinstance(event, _OPEN):
            depth += 1
            deepest = max(deepest, depth)
        elif isinstance(event, _CLOSE):
            depth -= 1
        elif isinstance(event, _LEAF):
            deepest = max(deepest, depth + 1)
    return deepest


@functools.cache
def _python_twin(loader: type) -> type:
    """The Python parser with ``loader``'s resolvers: it composes the same nodes."""
    return type(f"Py{loader.__name__}", (PyShallowLoader,), {"yaml_implicit_resolvers": loader.yaml_implicit_resolvers})


if getattr(yaml, "__with_libyaml__", False):

    class ShallowLoader(yaml.CSafeLoader):
        """SafeLoader (libyaml's parser) that refuses YAML nested more than ``MAX_NESTING`` levels."""

        def __init__(self, stream):
            self._text = stream if isinstance(stream, str | bytes) else stream.read()
            super().__init__(self._text)

        def get_single_node(self):
            try:
                if _nesting(self._text) <= MAX_NESTING:
                    return super().get_single_node()
            except yaml.YAMLError:
                pass
            # refused, or too deep: the Python parser says why in its own words (or, should the
            # two parsers disagree, composes what it accepts)
            return _python_twin(type(self))(self._text).get_single_node()

else:  # pragma: no cover - PyYAML built without libyaml
    ShallowLoader = PyShallowLoader


@functools.cache
def _scalar_loader() -> type:
    """YAML without its timestamp type: ``since=2026-11-01T00:00:00Z`` stays text, which the handler's
    model reads as the type of its field (a datetime, or a string where it wants one). Nesting is
    limited as in upkeep.yaml."""

    class ScalarLoader(ShallowLoader):
        yaml_implicit_resolvers = {
            first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
            for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
        }

    return ScalarLoader


def parse_assignments(items: list[str] | None, what: str = "--set") -> dict[str, Any]:
    """``key=value`` pairs; values are YAML scalars (``3`` is an int); ``a.b=1`` nests. The CLI's
    ``--set`` parser, here so that ``upkeep run``'s worker can be given the same config before the
    CLI is imported (``upkeep.app.foreground.fork_worker_early``)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"{what} {item!r} is not key=value", hint=f"e.g. {what} retention_days=7")
        try:
            value = yaml.load(raw, Loader=_scalar_loader()) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        target = out
        parts = key.split(".")
        for part in parts[:-1]:
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                raise UserError(f"{what} {item!r}: {part} is already set to a value")
            target = nested
        target[parts[-1]] = value
    return out

"""A YAML SafeLoader with a nesting limit, for every YAML upkeep reads from a user.

``ShallowLoader`` parses with libyaml (PyYAML's C parser, about ten times faster than its
Python one: every command reads upkeep.yaml) when PyYAML has it. The Python parser stays the
reference: a document libyaml refuses is parsed again by it, so an error reads as it always did,
and the nesting limit is checked on libyaml's events before it composes (its composer recurses in
C, where no recursion limit stops it).
"""

from __future__ import annotations

import functools

import yaml

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

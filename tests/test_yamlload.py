"""ShallowLoader parses with libyaml, yet reads, refuses and limits as PyYAML's Python parser does."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import upkeep
from upkeep.yamlload import MAX_NESTING, PyShallowLoader, ShallowLoader

CONFIGS = sorted((Path(upkeep.__file__).parent / "config").glob("*.yaml"))


def _marks(node):
    yield node.tag, node.start_mark.line, node.start_mark.column
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _marks(key)
            yield from _marks(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _marks(item)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_the_shipped_configs_read_the_same_with_both_parsers(path):
    text = path.read_text()
    assert yaml.load(text, Loader=ShallowLoader) == yaml.load(text, Loader=PyShallowLoader)  # noqa: S506
    assert list(_marks(yaml.compose(text, Loader=ShallowLoader))) == list(
        _marks(yaml.compose(text, Loader=PyShallowLoader))
    )


@pytest.mark.parametrize("text", ["a: b: c", "a: [1, 2", "- a\nb: 1", "a: 'x"])
def test_a_refused_document_says_what_the_python_parser_says(text):
    with pytest.raises(yaml.YAMLError) as fast:
        yaml.load(text, Loader=ShallowLoader)  # noqa: S506
    with pytest.raises(yaml.YAMLError) as reference:
        yaml.load(text, Loader=PyShallowLoader)  # noqa: S506
    assert str(fast.value) == str(reference.value)


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 100_000])
def test_nesting_beyond_the_limit_is_a_yaml_error_not_a_crash(depth):
    with pytest.raises(yaml.YAMLError, match=f"nested more than {MAX_NESTING} levels deep"):
        yaml.load("[" * depth + "]" * depth, Loader=ShallowLoader)  # noqa: S506


@pytest.mark.parametrize("levels", [MAX_NESTING - 2, MAX_NESTING - 1, MAX_NESTING])
def test_the_limit_counts_as_the_python_parser_counts(levels):
    nested = "[" * levels + "1" + "]" * levels
    try:
        reference = yaml.load(nested, Loader=PyShallowLoader)  # noqa: S506
    except yaml.YAMLError:
        with pytest.raises(yaml.YAMLError, match="nested more than"):
            yaml.load(nested, Loader=ShallowLoader)  # noqa: S506
    else:
        assert yaml.load(nested, Loader=ShallowLoader) == reference  # noqa: S506

"""A YAML SafeLoader with a nesting limit, for every YAML upkeep reads from a user."""

from __future__ import annotations

import yaml

# deeper than any real config; PyYAML's composer recurses per level and fails with a RecursionError
MAX_NESTING = 100


class ShallowLoader(yaml.SafeLoader):
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

"""Output without a terminal is written without Rich where Rich would print it unchanged: the
same characters as Rich's, compared here with Rich's own rendering."""

from __future__ import annotations

import contextlib
import io
import random

from rich.console import Console
from rich.table import Table

from upkeep.cli import common

ALPHABET = "abcXYZ019 -_:./,()@#%*+=<>!?'\"\\|{}~`$^&;"


def rich_table(columns: list[str], rows: list[list[str]]) -> str:
    """The table as ``common.table`` has Rich print it without a terminal."""
    out = io.StringIO()
    console = Console(file=out, highlight=False, emoji=False, width=common._console_width(), soft_wrap=True)
    table = Table(show_lines=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    return out.getvalue()


def plain_table(columns: list[str], rows: list[list[str]]) -> str | None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        written = common._plain_table(columns, rows)
    return out.getvalue() if written else None


def test_a_plain_table_is_what_rich_draws(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    rnd = random.Random(18)
    drawn = 0
    for _ in range(1500):
        width = rnd.randint(1, 8)
        columns = ["".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(0, 12))) for _ in range(width)]
        rows = [
            ["".join(rnd.choice(ALPHABET) for _ in range(rnd.choice([0, 1, 3, 8, 20, 40]))) for _ in range(width)]
            for _ in range(rnd.randint(0, 5))
        ]
        plain = plain_table(columns, rows)
        if plain is not None:
            drawn += 1
            assert plain == rich_table(columns, rows), (columns, rows)
    assert drawn > 500  # most fit the width: the comparison is not vacuous


def test_what_rich_would_change_is_left_to_rich(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert plain_table(["name"], [["[bold]x[/bold]"]]) is None  # markup
    assert plain_table(["name"], [["café"]]) is None  # a cell's width is not its length
    assert plain_table(["name"], [["a\tb"]]) is None  # a tab Rich expands
    assert plain_table(["a", "b"], [["x" * 100, "y" * 100]]) is None  # wider than the output: Rich folds
    assert plain_table(["a", "b"], [["x" * 70, "y" * 80]]) == rich_table(["a", "b"], [["x" * 70, "y" * 80]])


def test_plain_output_is_only_for_output_that_is_no_terminal(monkeypatch):
    common._plain.cache_clear()
    monkeypatch.setenv("FORCE_COLOR", "1")
    try:
        assert not common._plain()
    finally:
        common._plain.cache_clear()

"""What every command shares: the global options, lazy settings/store/service, output helpers.

Commands never talk to the database themselves: they call the application layer (``upkeep.app``),
the same code path the API uses. Output works without a TTY; ``--json`` prints machine-readable JSON.
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import typer

from upkeep.errors import UserError


def _console_width() -> int | None:
    """The width of output without a terminal (None: the terminal's)."""
    return None if sys.stdout.isatty() else max(160, int(os.environ.get("COLUMNS", "160")))


@functools.cache
def _console(stderr: bool) -> Any:
    from rich.console import Console

    tty = sys.stdout.isatty()
    width = _console_width()
    # without a terminal, lines are never wrapped: scripts and logs get one message per line;
    # names and messages print as they are (no ":name:" emoji codes, no highlighting)
    return Console(stderr=stderr, highlight=False, emoji=False, width=width, soft_wrap=not tty)


def __getattr__(name: str) -> Any:
    """``console`` and ``err_console``, made on first use: Rich is imported only by output."""
    if name == "console":
        return _console(False)
    if name == "err_console":
        return _console(True)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def actor() -> str:
    """The audit actor of CLI changes: ``cli:<os user>``."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (containers)
        user = str(os.getuid())
    return f"cli:{user}"


@dataclass
class State:
    """Global options; settings, store and service are created on first use."""

    config: str | None = None
    database_url: str | None = None
    _settings: Any = None
    _store: Any = None
    _service: Any = None
    _runs: Any = None
    _closers: list = field(default_factory=list)

    @property
    def settings(self):
        """Settings from the config file found (``find_config``); none found is a usage error (exit 2)
        before anything is created. A config other than ./upkeep.yaml is named on a terminal."""
        if self._settings is None:
            from pathlib import Path

            from upkeep.config_file import DEFAULT_NAME, settings_for

            self._settings = settings_for(self.config, self.database_url)
            used = self._settings.config_path
            if used != Path(DEFAULT_NAME).resolve() and sys.stderr.isatty():
                _console(True).print(f"using {used}", markup=False)
        return self._settings

    def store(self, *, upgrade: bool | None = None):
        """The store, reachable and with its schema current (SQLite upgrades itself)."""
        if self._store is None:
            from upkeep.runtime import open_store

            settings = self.settings
            self._store = open_store(settings, upgrade=settings.is_sqlite if upgrade is None else upgrade)
            self._closers.append(self._store.dispose)
        return self._store

    @property
    def service(self):
        if self._service is None:
            from upkeep.app import Upkeep

            self._service = Upkeep(self.settings, self.store(), trusted=True)  # the local user owns the host
        return self._service

    @property
    def runs(self):
        """Making runs now and following them (``upkeep run``): the same use cases as
        ``service``'s, without the ORM."""
        if self._runs is None:
            from upkeep.app.adhoc import LocalRuns

            self._runs = LocalRuns(self.settings, self.store())
        return self._runs

    def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:
                pass
        self._closers.clear()


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


# --- output ---------------------------------------------------------------------------------------


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@functools.cache
def _plain() -> bool:
    """Whether Rich would print to stdout exactly what it is given: no terminal (nor one forced by
    ``FORCE_COLOR`` or ``TTY_COMPATIBLE``), so no styles and no wrapping, and UTF-8, so its box
    characters. Scripts and cron jobs, which read upkeep's output, then do without Rich, whose
    import and rendering cost ``upkeep tasks list`` about a tenth of its time."""
    if sys.stdout.isatty() or "FORCE_COLOR" in os.environ or "TTY_COMPATIBLE" in os.environ:
        return False
    return (sys.stdout.encoding or "").lower().replace("-", "").startswith("utf")


def _is_plain_text(text: str) -> bool:
    """Text Rich prints unchanged, one character a cell: printable ASCII without markup's ``[``."""
    return text.isascii() and text.isprintable() and "[" not in text


def echo(text: str = "") -> None:
    if _plain() and text.isprintable():  # no control code for Rich to strip, no tab to expand
        sys.stdout.write(text + "\n")
        return
    _console(False).print(text, markup=False)


def table(columns: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    if title is None and _plain() and _plain_table(columns, cells):
        return
    from rich.table import Table

    t = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        t.add_column(column, overflow="fold")
    for row in cells:
        t.add_row(*row)
    _console(False).print(t)


def _plain_table(columns: list[str], rows: list[list[str]]) -> bool:
    """Write the table as Rich draws it (heavy head, a space each side of a cell) when every cell
    is plain text and the table fits the console's width unwrapped; False, writing nothing, else."""
    if not all(_is_plain_text(cell) for cell in (*columns, *(c for row in rows for c in row))):
        return False
    widths = [max(len(cell) for cell in column) for column in zip(columns, *rows, strict=True)]
    if sum(widths) + 3 * len(widths) + 1 > _console_width():
        return False

    def line(left: str, fill: str, middle: str, right: str) -> str:
        return left + middle.join(fill * (width + 2) for width in widths) + right

    def cells(values: list[str], edge: str) -> str:
        return edge + edge.join(f" {value:<{width}} " for value, width in zip(values, widths, strict=True)) + edge

    out = [line("┏", "━", "┳", "┓"), cells(columns, "┃"), line("┡", "━", "╇", "┩")]
    out += [cells(row, "│") for row in rows]
    out.append(line("└", "─", "┴", "┘"))
    sys.stdout.write("\n".join(out) + "\n")
    return True


def short_time(iso: str | None) -> str:
    if not iso:
        return ""
    return iso.replace("T", " ")[:19]


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


# --- parsing --------------------------------------------------------------------------------------


def parse_assignments(items: list[str] | None, what: str = "--set") -> dict[str, Any]:
    """``key=value`` pairs (``upkeep.yamlload.parse_assignments``), YAML imported only by the
    commands that take them (``--help`` does not)."""
    from upkeep.yamlload import parse_assignments as parse

    return parse(items, what)


def confirm_or_fail(yes: bool, question: str, flag: str = "--yes") -> None:
    """Ask on a terminal; without one, require ``--yes`` (never hang waiting for input)."""
    if yes:
        return
    if sys.stdin.isatty():
        if not typer.confirm(question, default=False):
            raise typer.Exit(1)
        return
    raise UserError(f"{question.rstrip('?')}: not confirmed", hint=f"pass {flag} to confirm without a terminal")

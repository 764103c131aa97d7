"""The log analysis behind ``logs.analyze``: format detection, DuckDB SQL building, aggregation.

``analyze_paths`` (globs and a window in, figures out) is the entry point for handlers;
``analyze_files`` is the engine under it.
"""

from upkeep.handlers.logs.parse.engine import AnalysisOptions, analyze_files
from upkeep.handlers.logs.parse.levels import normalise_level
from upkeep.handlers.logs.parse.paths import WINDOW_RE, WINDOW_UNITS, analyze_paths, expand, parse_window

__all__ = [
    "WINDOW_RE",
    "WINDOW_UNITS",
    "AnalysisOptions",
    "analyze_files",
    "analyze_paths",
    "expand",
    "normalise_level",
    "parse_window",
]

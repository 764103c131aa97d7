"""Private helpers of ``logs.analyze``: format detection, DuckDB SQL building, aggregation.

``analyze_files`` is the entry point; ``upkeep.handlers.logs_analyze.analyze_paths`` wraps it with
glob expansion and window parsing for other handlers.
"""

from upkeep.handlers._logparse.engine import AnalysisOptions, analyze_files
from upkeep.handlers._logparse.levels import normalise_level

__all__ = ["AnalysisOptions", "analyze_files", "normalise_level"]

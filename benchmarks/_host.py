"""How fast this host is while the benchmarks run.

The goals in seconds and milliseconds were set on this machine kind while the line
``python -c "import sqlalchemy, pydantic, typer"`` took 0.24 s (issue 18's table); a shared host runs
the same code at half that speed some hours, and those goals then fail without any change in
upkeep. ``make bench`` times that line before and after the benchmarks and prints it beside the
goals, so a run's verdicts can be read against the host it had. Ratios against a baseline measured
in the same run do not need it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

IMPORT_LINE = [sys.executable, "-c", "import sqlalchemy, pydantic, typer"]
ISSUE_SECONDS = 0.24


def import_line_seconds(runs: int = 5) -> float:
    """Median wall seconds of the libraries' import line, byte-compiled (after one warm-up run)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    walls = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        subprocess.run(IMPORT_LINE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        walls.append(time.perf_counter() - started)
    return statistics.median(walls[1:])


def describe(before: float, after: float) -> str:
    return (
        f"host: the libraries' import line took {before:.2f} s before the benchmarks and {after:.2f} s "
        f"after ({ISSUE_SECONDS} s when the goals were set; goals in seconds scale with it, ratios do not)"
    )

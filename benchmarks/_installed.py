"""upkeep timed as an installed copy runs: its modules byte-compiled.

``pip install`` compiles a package's modules, and Python caches what it imports, so a user's
``upkeep`` loads bytecode. A source checkout run with ``PYTHONDONTWRITEBYTECODE`` set (as on the
development machines) compiles upkeep's few hundred modules again in every process, about 0.07 s
of each CLI command, while the baselines' libraries (DuckDB's, pg_restore) come precompiled.
Benchmarks that time the CLI call this first, so both sides load compiled code.
"""

from __future__ import annotations

import compileall
from pathlib import Path

import upkeep


def compile_upkeep() -> str:
    package = Path(upkeep.__file__).parent
    compileall.compile_dir(str(package), quiet=1)
    return f"upkeep's modules byte-compiled as an installed copy's are ({package})"

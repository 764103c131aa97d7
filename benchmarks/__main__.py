"""`make bench`: run every benchmarks/bench_*.py (or the ones named) and print their ratios.

Each module has ``main() -> None`` printing what it measured against a baseline measured in the
same run. Benchmarks are not part of the test suite's pass/fail.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import time
from pathlib import Path

from benchmarks import _goals, _host


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = [m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_")]
    wanted = [a.removeprefix("bench_") for a in argv]
    if wanted:
        names = [n for n in names if n.removeprefix("bench_") in wanted]
    failures = 0
    host_before = _host.import_line_seconds()
    for name in sorted(names):
        print(f"\n=== {name} ===", flush=True)
        # the gigabytes the log and backup benchmarks write are still being flushed after they end:
        # each benchmark starts once what came before is on disk, so it is not timed against that
        # writeback (serve's p99 fire latency was 380 ms right after them, 40 ms in a run of its own)
        os.sync()
        started = time.monotonic()
        try:
            importlib.import_module(f"benchmarks.{name}").main()
        except Exception as exc:  # one broken benchmark must not hide the others
            failures += 1
            print(f"{name} failed: {exc!r}", flush=True)
            _goals.check(f"{name} ran to its end", "failed", "runs", False)
        print(f"({name} took {time.monotonic() - started:.1f}s)", flush=True)
    host_after = _host.import_line_seconds()
    print("\n=== goals ===")
    print(_host.describe(host_before, host_after))
    print(_goals.summary())
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

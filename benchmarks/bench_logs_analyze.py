"""Benchmark ``logs.analyze`` against the seed's grep|awk pipeline on a 1 GB, 5M-line JSON API log.

The baseline is ``monthly-performance-review.sh`` (seed 002) steps 2 and 3 plus the daily error count:
``grep durationMs | awk`` for the average duration, ``grep '"statusCode"' | wc -l`` for requests,
``grep '"statusCode":5' | wc -l`` for 5xx and ``grep '"level":"ERROR"' | wc -l`` for errors, run as
one shell script over the same file. ``logs.analyze`` runs through ``analyze_paths(window="all")``
in a child process so its peak RSS (``ru_maxrss`` of the child) is measured alone; it computes far
more than the pipeline (levels, top errors, status classes, p50/p95/p99, per day, per route).

Both sides run three times, interleaved, and the best wall time of each is compared.

The file is generated once under /tmp and reused while its size matches; it is deleted at the end
unless ``UPKEEP_BENCH_KEEP=1``. ``UPKEEP_BENCH_LINES`` changes the line count (default 5,000,000).
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

ROUNDS = 3
LINES = int(os.environ.get("UPKEEP_BENCH_LINES", "5000000"))
PATH = Path(f"/tmp/upkeep-bench-logs/api-out-{LINES}.log")
ROUTES = ["/api/chat", "/api/messages", "/api/users/42", "/api/health", "/api/search", "/api/upload"]

SEED_PIPELINE = r"""
f="$1"
grep "durationMs" "$f" | awk -F'"durationMs":' '{print $2}' \
  | awk -F',' '{sum+=$1; count++} END {print "avg " sum/count}'
echo "requests $(grep '"statusCode"' "$f" | wc -l)"
echo "5xx $(grep '"statusCode":5' "$f" | wc -l)"
echo "errors $(grep '"level":"ERROR"' "$f" | wc -l)"
"""

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from datetime import UTC, datetime
    from upkeep.handlers._logparse import analyze_paths
    started = time.perf_counter()
    cpu0 = time.process_time()
    result = analyze_paths([sys.argv[1]], window="all", now=datetime.now(UTC))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"elapsed": elapsed, "cpu": cpu, "rss_mb": rss, "levels": result["levels"],
                      "requests": result["requests"], "duration": result["duration"]}))
    """
)


def expected_size(lines: int) -> int:
    return lines * 200


def generate(path: Path, lines: int) -> None:
    """About 200 bytes a line, 2% 5xx (level ERROR), 5% 404, exponential durations; ~10 s for 5M lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(42)
    start_ms = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)
    step = 30 * 86400 * 1000 // lines or 1
    template = (
        '{"level":"%s","timestamp":"%s","service":"api","requestId":"%08x","method":"GET",'
        '"route":"%s","statusCode":%d,"durationMs":%d,"msg":"%s","pad":"%s"}\n'
    )
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        chunk: list[str] = []
        for i in range(lines):
            t = start_ms + i * step
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 1000)) + f".{t % 1000:03d}Z"
            r = rnd.random()
            status = 500 if r < 0.02 else (404 if r < 0.07 else 200)
            level = "ERROR" if status >= 500 else "INFO"
            msg = f"upstream timeout after {i % 997} ms" if status >= 500 else "request completed"
            line = template % (level, ts, i, ROUTES[i % 6], status, int(rnd.expovariate(1 / 80)), msg, "")
            chunk.append(line[:-3] + "x" * max(0, 200 - len(line)) + '"}\n')
            if len(chunk) >= 20000:
                fh.write("".join(chunk))
                chunk = []
        fh.write("".join(chunk))
    tmp.rename(path)


def ensure_file() -> Path:
    if PATH.exists() and abs(PATH.stat().st_size - expected_size(LINES)) < LINES * 4:
        print(f"reusing {PATH} ({PATH.stat().st_size / 1e9:.2f} GB)")
        return PATH
    started = time.perf_counter()
    generate(PATH, LINES)
    print(
        f"generated {PATH} ({PATH.stat().st_size / 1e9:.2f} GB, {LINES:,} lines) in "
        f"{time.perf_counter() - started:.1f}s"
    )
    return PATH


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_seed(path: Path) -> tuple[float, float, str]:
    """Wall and CPU seconds (all pipeline processes) of the seed's pipeline, and its output."""
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    cpu0 = _children_cpu()
    started = time.perf_counter()
    out = subprocess.run(
        ["bash", "-c", SEED_PIPELINE, "bench", str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LC_ALL": "C"},
    ).stdout
    return time.perf_counter() - started, _children_cpu() - cpu0, out


def run_analyze(path: Path) -> tuple[float, dict]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    data["wall"] = wall
    data["children_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, data


def main() -> None:
    path = ensure_file()
    try:
        seeds, runs = [], []
        for _ in range(ROUNDS):  # interleaved, so a slow spell of the machine hits both sides alike
            seeds.append(run_seed(path))
            runs.append(run_analyze(path)[1])
        seed_best, seed_cpu, seed_out = min(seeds)
        print(
            f"seed grep|awk pipeline: {seed_best:.2f}s wall (runs {', '.join(f'{s[0]:.2f}s' for s in seeds)}), "
            f"{seed_cpu:.2f}s CPU"
        )
        print(textwrap.indent(seed_out.strip(), "    "))
        best = min(runs, key=lambda d: d["wall"])
        walls = ", ".join(f"{r['wall']:.2f}s" for r in runs)
        print(
            f"logs.analyze (analyze_paths, window=all): {best['elapsed']:.2f}s in the call, "
            f"{best['wall']:.2f}s with interpreter start (runs {walls}), "
            f"{best['cpu']:.2f}s CPU (both cores); peak RSS {best['rss_mb']:.0f} MB"
        )
        print(f"    levels {best['levels']}")
        print(
            f"    requests {best['requests']['total']}, 5xx {best['requests']['status_classes'].get('5xx', 0)}, "
            f"5xx rate {best['requests']['rate_5xx']:.4%}"
        )
        print(f"    duration {best['duration']}")
        ratio = seed_best / best["wall"]
        print(
            f"ratio seed/analyze (best wall of each, incl. interpreter start): {ratio:.1f}x (target >= 4x); "
            f"CPU ratio {seed_cpu / best['cpu']:.1f}x; "
            f"peak RSS {best['rss_mb']:.0f} MB (target < 500 MB)"
        )
        print(
            f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
            "(wall ratios are only meaningful on an otherwise idle machine)"
        )
    finally:
        if os.environ.get("UPKEEP_BENCH_KEEP") != "1":
            path.unlink(missing_ok=True)
            try:
                path.parent.rmdir()
            except OSError:
                pass


if __name__ == "__main__":
    main()

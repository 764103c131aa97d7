"""``upkeep run logs.analyze`` end to end against the seed's grep|awk pipeline and a plain DuckDB query.

The log is an API's request log written by pino (``benchmarks/loggers/pino_api.js``, installed with
``npm ci`` there): nested ``req.url``, ``res.statusCode``, ``durationMs``, upper-case level labels.
Sizes: 20k, 1M and 5M lines (``UPKEEP_BENCH_SIZES=20000,1000000``). Each is timed three ways,
interleaved, three rounds, best wall of each:

- upkeep: ``upkeep run logs.analyze --set paths=[FILE] --set window=all --json`` as the local CLI
  user runs it (a fresh ``upkeep init`` directory), its worker process included;
- seed: ``monthly-performance-review.sh`` (seed 002) steps 2 and 3 plus the daily error count;
- DuckDB: a Python script with one ``read_ndjson`` query (typed columns) for the same figures;
- analysis alone: a Python script calling the analysis behind the handler (``analyze_paths``), no
  CLI, store or worker: what the query and the handler's own work cost beside DuckDB's, apart from
  the CLI's fixed start.

CPU is user+system of the process and its children. The figures of the four (error count,
5xx rate, average, p95) are printed side by side, and upkeep's are checked against DuckDB's. With
the 5M size, the same log twice (10M lines) shows the peak RSS staying flat. Also printed: what
the CLI itself costs before any analysis (``upkeep --help``, ``upkeep run debug.noop``), what the
opt-in per-route figures cost at 1M lines (``by_route=true``), and a structlog and a real-nginx
log analysed the same way. upkeep's modules are byte-compiled first, as
an installed copy's are (``benchmarks/_installed.py``). Files are cached under
/tmp/upkeep-bench-logs, or ``UPKEEP_BENCH_LOGS_DIR`` (``UPKEEP_BENCH_KEEP=1`` keeps them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from benchmarks._goals import check
from benchmarks._installed import compile_upkeep

ROUNDS = 3
ROOT = Path(__file__).resolve().parent
LOGGERS = ROOT / "loggers"
CACHE = Path(os.environ.get("UPKEEP_BENCH_LOGS_DIR", "/tmp/upkeep-bench-logs"))
SIZES = [int(s) for s in os.environ.get("UPKEEP_BENCH_SIZES", "20000,1000000,5000000").split(",")]
UPKEEP = str(Path(sys.executable).with_name("upkeep"))

SEED_PIPELINE = r"""
f="$1"
grep "durationMs" "$f" | awk -F'"durationMs":' '{print $2}' \
  | awk -F',' '{sum+=$1; count++} END {print "avg " sum/count}'
echo "requests $(grep '"statusCode"' "$f" | wc -l)"
echo "5xx $(grep '"statusCode":5' "$f" | wc -l)"
echo "errors $(grep '"level":"ERROR"' "$f" | wc -l)"
"""

DUCKDB_SCRIPT = textwrap.dedent(
    """
    import json, sys, duckdb
    con = duckdb.connect()
    con.execute('SET enable_progress_bar = false')  # it draws on stdout after 2 s
    row = con.execute('''
        SELECT count(*) FILTER (WHERE level IN ('ERROR', 'FATAL')),
               count(res.statusCode), count(*) FILTER (WHERE res.statusCode >= 500),
               avg(durationMs), quantile_cont(durationMs, 0.95)
        FROM read_ndjson(?, columns={level: 'VARCHAR', res: 'STRUCT(statusCode INTEGER)', durationMs: 'DOUBLE'})
    ''', [sys.argv[1]]).fetchone()
    print(json.dumps({"errors": row[0], "requests": row[1], "5xx": row[2], "avg": row[3], "p95": row[4]}))
    """
)

ANALYSIS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from upkeep.handlers.logs.parse import analyze_paths
    print(json.dumps(analyze_paths([sys.argv[1]], window="all"), default=str))
    """
)


# Linux counts into a child's peak RSS the pages it shared with its parent when it called exec, so a
# command started by a large process (make bench's, after the API benchmark) reports that process's
# size. GNU time starts the command from a small process of its own and reports the command's peak.
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run(argv: list[str], cwd: Path | None = None, env: dict | None = None) -> tuple[float, float, float, str]:
    """Wall, CPU (user+system of the command and every child it waited for) and peak RSS in MB."""
    with tempfile.NamedTemporaryFile("r", prefix="upkeep-bench-rss-") as peak:
        timed = [GNU_TIME, "-f", "%M", "-o", peak.name, *argv] if GNU_TIME else argv
        started = time.perf_counter()
        proc = subprocess.Popen(timed, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # wait4 gives this child's own rusage (with its descendants'), not the sum over all children
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        stdout, stderr = proc.stdout.read(), proc.stderr.read()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in (0, 1):  # 1: the run completed and found something critical
            raise RuntimeError(f"{' '.join(argv[:3])} exited {proc.returncode}: {stderr[-2000:]}")
        # time's last line is the figure (before it: "Command exited with non-zero status 1")
        rss_kb = int(peak.read().split()[-1]) if GNU_TIME else usage.ru_maxrss
    return wall, usage.ru_utime + usage.ru_stime, rss_kb / 1024, stdout


def ensure_pino() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is needed to write the pino log (apt-get install nodejs npm)")
    if not (LOGGERS / "node_modules" / "pino").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=LOGGERS, check=True)
    return node


def pino_log(lines: int) -> Path:
    path = CACHE / f"api-out-pino-{lines}.log"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        tmp = path.with_suffix(".tmp")
        subprocess.run([ensure_pino(), str(LOGGERS / "pino_api.js"), str(tmp), str(lines), "labels"], check=True)
        tmp.rename(path)
        print(f"pino wrote {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.1f}s")
    return path


def workspace() -> Path:
    """A directory set up the way a user starts: ``upkeep init``, with upkeep's modules compiled."""
    print(compile_upkeep())
    root = Path(tempfile.mkdtemp(prefix="upkeep-bench-cli-"))
    subprocess.run([UPKEEP, "init"], cwd=root, check=True, capture_output=True)
    return root


def figures_of(analysis: dict) -> dict:
    return {
        "errors": analysis["errors"],
        "requests": analysis["requests"]["total"],
        "5xx": analysis["requests"]["5xx"],
        "avg": analysis["duration"]["avg_ms"],
        "p95": analysis["duration"]["p95_ms"],
    }


def upkeep_side(root: Path, path: Path, *extra: str) -> tuple[float, float, float, dict]:
    wall, cpu, rss, out = run(
        [UPKEEP, "run", "logs.analyze", "--set", f"paths=[{path}]", "--set", "window=all", "--json", *extra], cwd=root
    )
    figures = figures_of(json.loads(out)["result"]["targets"]["paths"])
    return wall, cpu, rss, figures


def seed_side(path: Path) -> tuple[float, float, float, dict]:
    wall, cpu, rss, out = run(["bash", "-c", SEED_PIPELINE, "seed", str(path)], env={**os.environ, "LC_ALL": "C"})
    values = dict(line.split(" ", 1) for line in out.strip().splitlines())
    return wall, cpu, rss, {"errors": int(values["errors"]), "requests": int(values["requests"]),
                            "5xx": int(values["5xx"]), "avg": float(values["avg"]), "p95": None}  # fmt: skip


def duckdb_side(path: Path) -> tuple[float, float, float, dict]:
    wall, cpu, rss, out = run([sys.executable, "-c", DUCKDB_SCRIPT, str(path)])
    return wall, cpu, rss, json.loads(out)


def analysis_side(path: Path) -> tuple[float, float, float, dict]:
    wall, cpu, rss, out = run([sys.executable, "-c", ANALYSIS_SCRIPT, str(path)])
    return wall, cpu, rss, figures_of(json.loads(out))


def fmt(figures: dict) -> str:
    rate = figures["5xx"] / figures["requests"] if figures["requests"] else 0.0
    p95 = f"{figures['p95']:.0f}" if figures["p95"] is not None else "-"
    return f"errors {figures['errors']}, 5xx rate {rate:.4%}, avg {figures['avg']:.3f} ms, p95 {p95} ms"


def compare(root: Path, path: Path) -> dict:
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # the page cache, for all sides
    sides = {
        "seed": seed_side,
        "duckdb": duckdb_side,
        "upkeep": lambda p: upkeep_side(root, p),
        "analysis": analysis_side,
    }
    results: dict[str, list] = {name: [] for name in sides}
    for _ in range(ROUNDS):  # interleaved: a slow spell of the machine hits every side alike
        for name, side in sides.items():
            results[name].append(side(path))
    best = {name: min(runs, key=lambda r: r[0]) for name, runs in results.items()}
    for name, (wall, cpu, rss, figures) in best.items():
        walls = ", ".join(f"{r[0]:.2f}" for r in results[name])
        print(f"  {name:8s} {wall:6.2f}s wall ({walls}), {cpu:6.2f}s CPU, peak RSS {rss:4.0f} MB; {fmt(figures)}")
    same = agree(best["upkeep"][3], best["duckdb"][3])
    check(f"logs.analyze {path.name}: figures equal DuckDB's", same, "yes", same == "yes")
    print(f"  upkeep's figures equal DuckDB's: {same}")
    print(f"  the analysis alone's figures equal DuckDB's: {agree(best['analysis'][3], best['duckdb'][3])}")
    return best


def check_size(lines: int, best: dict) -> None:
    """The issue's goals for a log of ``lines`` lines, in make bench's goal summary."""
    u, s, d = best["upkeep"], best["seed"], best["duckdb"]
    what = f"upkeep run logs.analyze, {lines:,} lines"
    if lines <= 20_000:
        check(f"{what}: wall", f"{u[0]:.2f} s", "<= 0.5 s", u[0] <= 0.5)
    if lines >= 1_000_000:
        check(f"{what}: wall / DuckDB's", f"{u[0] / d[0]:.2f}x", "<= 1.5x", u[0] / d[0] <= 1.5)
    if lines >= 5_000_000:
        check(f"{what}: CPU / DuckDB's", f"{u[1] / d[1]:.2f}x", "<= 2x", u[1] / d[1] <= 2)
        check(f"{what}: faster than the seed", f"{s[0] / u[0]:.1f}x", ">= 4x", s[0] / u[0] >= 4)


def agree(ours: dict, theirs: dict) -> str:
    """Counts exactly, average and p95 to a millionth (both are exact for whole milliseconds)."""
    bad = [k for k in ("errors", "requests", "5xx") if ours[k] != theirs[k]]
    bad += [k for k in ("avg", "p95") if abs(ours[k] - theirs[k]) > 1e-6 * max(1.0, abs(theirs[k]))]
    return "yes" if not bad else f"NO ({', '.join(bad)})"


def flat_memory(root: Path, five_million: Path) -> None:
    """Peak RSS at 10M lines (the 5M log twice, as two rotated files) beside the 5M figure."""
    logs = CACHE / "ten-million"
    logs.mkdir(exist_ok=True)
    for name in ("api-out__1.log", "api-out.log"):
        if not (logs / name).exists():
            os.link(five_million, logs / name)
    wall, cpu, rss, figures = upkeep_side(root, logs / "api-out*.log")
    check("logs.analyze 10M lines: peak RSS", f"{rss:.0f} MB", "<= 300 MB", rss <= 300)
    print(
        f"10M lines (two 5M files): upkeep {wall:.2f}s wall, {cpu:.2f}s CPU, "
        f"peak RSS {rss:.0f} MB (target <= 300 MB); {fmt(figures)}"
    )


def per_route(root: Path, path: Path) -> None:
    """What the opt-in per-route figures cost: the same log with ``by_route=true``, interleaved."""
    plain, routed = [], []
    for _ in range(ROUNDS):
        plain.append(upkeep_side(root, path))
        routed.append(upkeep_side(root, path, "--set", "by_route=true"))
    p, r = min(plain, key=lambda x: x[0]), min(routed, key=lambda x: x[0])
    print(
        f"by_route=true on the same log: {r[0]:.2f}s wall, {r[1]:.2f}s CPU against {p[0]:.2f}s wall, "
        f"{p[1]:.2f}s CPU without ({r[1] / p[1]:.2f}x the CPU)"
    )


def cli_start(root: Path) -> None:
    help_wall = min(run([UPKEEP, "--help"], cwd=root)[0] for _ in range(3))
    noop = min(run([UPKEEP, "run", "debug.noop"], cwd=root)[:2] for _ in range(3))
    python = min(run([sys.executable, "-c", "pass"])[0] for _ in range(3))
    print(
        f"CLI start: `upkeep --help` {help_wall:.2f}s; `upkeep run debug.noop` (CLI, store, worker, no analysis) "
        f"{noop[0]:.2f}s wall, {noop[1]:.2f}s CPU; `python -c pass` {python:.2f}s"
    )


def other_formats(root: Path) -> None:
    """structlog JSON and a real nginx's access log, analysed through the CLI the same way."""
    structlog_path = CACHE / "app-structlog-200000.log"
    if not structlog_path.exists():
        subprocess.run([sys.executable, str(LOGGERS / "structlog_api.py"), str(structlog_path), "200000"], check=True)
    nginx_path = CACHE / "access-nginx-20000.log"
    if not nginx_path.exists() and (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
        subprocess.run([sys.executable, str(LOGGERS / "nginx_access.py"), str(nginx_path), "20000"], check=True)
    for label, path in (("structlog 200k lines", structlog_path), ("nginx 20k requests", nginx_path)):
        if not path.exists():
            print(f"{label}: skipped (no nginx)")
            continue
        wall, cpu, rss, figures = min(upkeep_side(root, path) for _ in range(3))
        print(f"{label}: upkeep {wall:.2f}s wall, {cpu:.2f}s CPU, peak RSS {rss:.0f} MB; {fmt(figures)}")


def main() -> None:
    root = workspace()
    rows = []
    try:
        cli_start(root)
        for lines in SIZES:
            path = pino_log(lines)
            print(f"pino log, {lines:,} lines ({path.stat().st_size / 1e6:.0f} MB):")
            rows.append((lines, compare(root, path)))
        if 1_000_000 in SIZES:
            per_route(root, pino_log(1_000_000))
        if 5_000_000 in SIZES:
            flat_memory(root, pino_log(5_000_000))
        other_formats(root)
        print(
            "\n| lines | upkeep wall | CPU | seed | DuckDB wall | CPU | seed/upkeep | upkeep/DuckDB wall | CPU "
            "| analysis alone/DuckDB wall | CPU |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for lines, best in rows:
            u, s, d, a = best["upkeep"], best["seed"], best["duckdb"], best["analysis"]
            print(
                f"| {lines:,} | {u[0]:.2f}s | {u[1]:.2f}s | {s[0]:.2f}s | {d[0]:.2f}s | {d[1]:.2f}s | "
                f"{s[0] / u[0]:.1f}x | {u[0] / d[0]:.2f}x | {u[1] / d[1]:.2f}x | "
                f"{a[0] / d[0]:.2f}x | {a[1] / d[1]:.2f}x |"
            )
        print(
            "targets: 5M >= 4x faster than the seed, <= 1.5x DuckDB's wall and <= 2x its CPU; "
            "1M <= 1.5x DuckDB's wall; 20k <= 0.5 s"
        )
        for lines, best in rows:
            check_size(lines, best)
        print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if os.environ.get("UPKEEP_BENCH_KEEP") != "1":
            shutil.rmtree(CACHE, ignore_errors=True)


if __name__ == "__main__":
    main()

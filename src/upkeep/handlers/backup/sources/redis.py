"""Redis backups: ``BGSAVE``, wait for it, copy the RDB file. Verified with ``redis-check-rdb`` on a
scratch COPY (never ``--fix``, never the artifact itself).

Source fields: ``url`` (``redis://[:password@]host:port/db``), optional ``rdb_path`` (otherwise from
``CONFIG GET dir`` / ``dbfilename``; set it where CONFIG is disabled), ``save_timeout_s`` (600).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upkeep.errors import ConfigError, ConnectionFailed, UserError
from upkeep.handlers.backup.checks import check
from upkeep.handlers.backup.sources.base import Source
from upkeep.handlers.backup.stream import fsync_dir, temp_name

if TYPE_CHECKING:  # redis is imported where it is used: loading the handlers must not load it
    import redis as redis_lib


def layout(config) -> tuple[str, str]:
    return ".rdb", config.compression


def _client(spec: dict[str, Any]) -> redis_lib.Redis:
    import redis as redis_lib

    url = spec.get("url") or f"redis://{spec.get('host', '127.0.0.1')}:{spec.get('port', 6379)}/0"
    client = redis_lib.Redis.from_url(str(url), socket_timeout=30, socket_connect_timeout=10)
    try:
        client.ping()
    except redis_lib.RedisError as exc:
        conn = client.connection_pool.connection_kwargs
        raise ConnectionFailed(
            f"cannot connect to Redis at {conn.get('host')}:{conn.get('port')}: {exc}",
            hint="check the source url (targets.databases)",
        ) from None
    return client


def _bgsave(ctx, client: redis_lib.Redis, timeout: float) -> None:
    import redis as redis_lib

    deadline = time.monotonic() + timeout
    for attempt in range(2):
        try:
            client.bgsave()
            break
        except redis_lib.ResponseError as exc:
            if "in progress" not in str(exc) or attempt:
                raise UserError(f"Redis BGSAVE failed: {exc}") from None
            _wait_idle(ctx, client, deadline)  # someone else's save: wait, then take our own
    _wait_idle(ctx, client, deadline)
    info = client.info("persistence")
    if info.get("rdb_last_bgsave_status") != "ok":
        raise UserError(
            f"Redis BGSAVE failed (rdb_last_bgsave_status={info.get('rdb_last_bgsave_status')})",
            hint="see the Redis log (disk full? permissions of dir?)",
        )


def _wait_idle(ctx, client: redis_lib.Redis, deadline: float) -> None:
    while client.info("persistence").get("rdb_bgsave_in_progress"):
        ctx.check_cancelled()
        if time.monotonic() > deadline:
            raise UserError("Redis BGSAVE did not finish in time", hint="raise save_timeout_s")
        time.sleep(0.05)


def _rdb_path(client: redis_lib.Redis, spec: dict[str, Any], config) -> Path:
    import redis as redis_lib

    configured = config.rdb_path or spec.get("rdb_path")
    if configured:
        return Path(configured)
    try:
        directory = client.config_get("dir")["dir"]
        name = client.config_get("dbfilename")["dbfilename"]
    except (redis_lib.ResponseError, KeyError):
        raise ConfigError(
            "cannot read the RDB location with CONFIG GET", hint="set rdb_path in the source", field="config.rdb_path"
        ) from None
    return Path(directory) / name


def create(ctx, source, config, new_writer, work_dir: Path) -> dict[str, Any]:
    import redis as redis_lib

    client = _client(source.spec)
    try:
        version = client.info("server").get("redis_version", "")
        keys = sum(int(v.get("keys", 0)) for k, v in client.info("keyspace").items() if k.startswith("db"))
        _bgsave(ctx, client, float(source.spec.get("save_timeout_s", 600)))
        path = _rdb_path(client, source.spec, config)
    finally:
        client.close()
    if not path.is_file():
        raise UserError(
            f"RDB file {path} not found after BGSAVE",
            hint="set rdb_path to where Redis writes it",
            field="config.rdb_path",
        )
    writer = new_writer("")
    with open(path, "rb") as fh:  # Redis replaces the file by rename: this handle stays consistent
        writer.copy_from(fh, ctx.check_cancelled)
    writer.finish()
    return {
        "format": "rdb",
        "row_counts": {},
        "keys_at_save": keys,
        "server_version": version,
        "tool_versions": {"redis-py": redis_lib.__version__},
        "rdb_path": str(path),
    }


def find_checker(config) -> str:
    path = getattr(config, "redis_check_rdb_path", None) or shutil.which("redis-check-rdb")
    if not path:
        raise UserError("redis-check-rdb is not installed", hint="install redis-tools or set redis_check_rdb_path")
    return path


def verify(ctx, entry: dict[str, Any], raw_copy: Path, config) -> list[dict[str, Any]]:
    """``raw_copy`` is a scratch copy decoded from the artifact: the checker never sees the backup."""
    from upkeep.engine.context import CommandFailed

    checker = find_checker(config)
    try:
        result = ctx.run_command([checker, str(raw_copy)], timeout=600, check=False)
    except CommandFailed as exc:
        return [check("rdb", False, f"redis-check-rdb could not run: {exc}")]
    ok = result.returncode == 0 and "RDB looks OK" in result.stdout + result.stderr
    text = (result.stdout + result.stderr).strip().splitlines()
    message = "redis-check-rdb: RDB looks OK" if ok else "redis-check-rdb: " + " ".join(text[-3:])
    return [check("rdb", ok, message)]


def restore_plan(entry: dict[str, Any], config) -> dict[str, Any]:
    target = config.target_path or entry["manifest"].get("rdb_path")
    if not target:
        raise UserError(
            "restoring a Redis backup needs target_path (the server's RDB file)", field="config.target_path"
        )
    exists = Path(target).exists()
    steps = []
    if config.stop_command:
        steps.append(f"run stop_command {config.stop_command}")
    if exists and config.safety_backup:
        steps.append(f"copy the current {target} to {target}.before-restore")
    steps.append(f"replace {target} with backup {entry['id']}")
    if config.start_command:
        steps.append(f"run start_command {config.start_command} (always)")
    return {
        "target_path": str(target),
        "exists": exists,
        "drops": str(target) if exists else None,
        "creates": None if exists else str(target),
        "steps": steps,
    }


def restore(ctx, entry: dict[str, Any], raw: Path, plan: dict[str, Any], config) -> list[dict[str, Any]]:
    target = Path(plan["target_path"])
    if target.exists() and config.safety_backup:
        shutil.copy2(target, target.with_name(target.name + ".before-restore"))
    tmp = temp_name(target)
    try:
        shutil.copyfile(raw, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return [check("replaced", True, f"wrote {target}")]


class RedisSource(Source):
    type = "redis"

    @classmethod
    def default_name(cls, spec: dict[str, Any]) -> str:
        url = str(spec.get("url", ""))
        m = re.search(r":(\d+)", url.split("//", 1)[-1])
        return f"redis-{spec.get('port') or (m.group(1) if m else '6379')}"

    def layout(self, config) -> tuple[str, str]:
        return layout(config)

    def create(self, ctx, config, new_writer, work_dir: Path, never_include: list[Path]) -> dict[str, Any]:
        return create(ctx, self, config, new_writer, work_dir)

    @classmethod
    def verify(cls, ctx, entry, raw, config, work_dir, server, on_restored=None):
        return verify(ctx, entry, raw, config)

    @classmethod
    def restore_plan(cls, ctx, entry, config, server):
        return restore_plan(entry, config)

    @classmethod
    def restore(cls, ctx, entry, raw, plan, config, server, work_dir):
        return restore(ctx, entry, raw, plan, config)

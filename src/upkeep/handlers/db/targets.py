"""Database targets of the ``db.*`` handlers (and others that read a database): by inventory name,
``upkeep`` (upkeep's own store) or URL, secrets resolved (``target_from_ctx``); SQLite ones
(``is_sqlite``, ``sqlite_path``). A PostgreSQL one is read by ``postgres.PgTarget``.

Targets (``upkeep.yaml``): a ``targets.databases`` entry is a PostgreSQL one (a URL or libpq fields,
see ``postgres``) or a SQLite file (``url: sqlite:////var/lib/app/app.db``).

The name ``upkeep`` means upkeep's own store (PostgreSQL or SQLite). An explicit
``targets.databases.upkeep`` entry wins; otherwise the store URL comes from the engine
(``ctx.services.database_url``), then ``UPKEEP_DATABASE_URL``, then ``<data_dir>/upkeep.db``.
A handler's ``target`` may also be a URL itself (``postgresql://...`` or ``sqlite:///path``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from upkeep import secrets as secret_refs
from upkeep.errors import ConfigError

_SQLITE_PREFIXES = ("sqlite:///", "sqlite+pysqlite:///")


def is_sqlite(target: dict | str) -> bool:
    url = target if isinstance(target, str) else str(target.get("url") or "")
    return url.startswith(_SQLITE_PREFIXES)


def sqlite_path(target: dict | str) -> Path:
    """The file of a ``sqlite:///path`` target (``sqlite:////abs/path`` or ``sqlite:///relative``)."""
    url = target if isinstance(target, str) else str(target.get("url") or "")
    for prefix in _SQLITE_PREFIXES:
        if url.startswith(prefix):
            path = url[len(prefix) :].split("?", 1)[0]
            if not path or path == ":memory:":
                raise ConfigError(f"{url!r} is not a SQLite database file", hint="use sqlite:////absolute/path.db")
            return Path(path)
    raise ConfigError(f"{secret_refs.redact_url_password(url)!r} is not a sqlite:/// URL")


def _own_store_url(ctx: Any) -> str:
    services = getattr(ctx, "services", None)
    if services is not None and services.database_url:
        return services.database_url
    env_url = os.environ.get("UPKEEP_DATABASE_URL")
    if env_url:
        return env_url
    data_dir = Path(getattr(ctx, "data_dir", ".upkeep"))
    candidate = data_dir / "upkeep.db"
    if candidate.exists():
        return f"sqlite:///{candidate.resolve()}"
    raise ConfigError(
        "cannot find upkeep's own store for target 'upkeep'",
        hint="define targets.databases.upkeep (url: sqlite:///path or postgresql://...)",
    )


def target_from_ctx(ctx: Any, name_or_url: str) -> dict:
    """A database target by inventory name, ``upkeep`` (the own store) or URL; secrets resolved.

    The result always has ``name`` and either ``url`` or libpq fields (host, port, user, ...).
    """
    if not name_or_url:
        raise ConfigError("no database target given", hint="set target: NAME (from targets.databases) or a URL")
    collected = getattr(ctx, "secrets", None)
    if "://" in name_or_url:
        url = secret_refs.resolve(name_or_url, collected=collected)
        return {"name": secret_refs.redact_url_password(name_or_url), "url": url}
    inventory = ctx.targets
    if name_or_url in inventory.names("databases"):
        value = inventory.get("databases", name_or_url)
        if isinstance(value, str):
            value = {"url": value}
        if not isinstance(value, dict):
            raise ConfigError(f"targets.databases.{name_or_url} must be a mapping with url: or host:/port:/user:")
        return {"name": name_or_url, **value}
    if name_or_url == "upkeep":
        url = secret_refs.resolve(_own_store_url(ctx), collected=collected)
        return {"name": "upkeep", "url": url}
    inventory.get("databases", name_or_url)  # raises the standard "unknown target" error
    raise AssertionError("unreachable")

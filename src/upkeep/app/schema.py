"""The store's schema as ``upkeep db current`` and ``upkeep doctor`` see it: reachable, at which
revision, and whether that is the newest."""

from __future__ import annotations

from typing import Any

from upkeep.errors import ConfigError, UserError


def schema_state(settings) -> dict[str, Any]:
    """``{"database", "current", "head", "up_to_date"}`` of the configured store (its URL without
    the password). A URL that cannot be used raises ``ConfigError``; a store that cannot be
    reached, another ``UserError``."""
    from upkeep.store.db import Store, redact_url

    try:
        store = Store(settings.resolved_database_url)
    except ConfigError:
        raise
    except UserError as exc:
        raise ConfigError(exc.message, hint=exc.hint, field=exc.field) from None
    try:
        store.check_connection()
        current, head = store.current_revision(), store.head_revision()
    finally:
        store.dispose()
    return {"database": redact_url(store.url), "current": current, "head": head, "up_to_date": current == head}

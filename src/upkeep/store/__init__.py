"""The store: tables, migrations, the records API.

``Store`` is imported on first use: ``upkeep.store.states`` (the run states a handler names) stays
as light as itself, without SQLAlchemy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Store"]


def __getattr__(name: str) -> Any:
    if name == "Store":
        from upkeep.store.db import Store

        return Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The store: tables, migrations, the records API."""

from upkeep.store.db import Store

__all__ = ["Store"]

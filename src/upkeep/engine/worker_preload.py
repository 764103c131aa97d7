"""Imported once by the embedded executor's fork server, before it forks worker processes: the
engine and every handler module, so each worker shares these pages instead of importing its own."""

import gc

from upkeep.engine import execute  # noqa: F401
from upkeep.engine.registry import REGISTRY

REGISTRY.ensure_loaded()
gc.freeze()  # keep the preloaded objects out of the collector's way: fewer shared pages copied

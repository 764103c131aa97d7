"""Imported once by the embedded executor's fork server, before it forks worker processes: the
engine, so each worker shares these pages instead of importing its own. Handler modules are
imported by the workers that run them (``Registry.resolve``): the fork server starts again after
every idle spell, and a worker needs one handler or a few, not all of them."""

import gc

from upkeep.engine import execute  # noqa: F401

gc.freeze()  # keep the preloaded objects out of the collector's way: fewer shared pages copied

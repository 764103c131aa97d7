"""Built-in handlers, one module per domain. Every public module here is imported by
``load_builtin`` (the ``upkeep.handlers`` entry point), which registers its ``@handler`` functions.
Modules whose names start with ``_`` are helpers shared by handlers.
"""

from __future__ import annotations

import importlib
import pkgutil


def load_builtin() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")

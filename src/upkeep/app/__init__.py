"""The application layer: the use cases the CLI, the API and the UI share, one module per family
(``tasks``, ``runs``, ``backups``, ``keys``, ``alerts`` with silences, ``audit``, ``config`` for
apply/export, ``views``). Each write is one function that validates, audits (``Base.audit``, the
one shape of each kind of change, redacted once) and commits. The adapters (``upkeep.cli``,
``upkeep.api``, ``upkeep.web``) import this package, never the store, the engine or the handlers
(``[tool.importlinter]`` in pyproject.toml says so).

``Upkeep`` (``upkeep.app.usecases``) is imported on first use, so that ``from upkeep.app import
alerts`` stays as light as the module it names.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "Upkeep":
        from upkeep.app.usecases import Upkeep

        return Upkeep
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

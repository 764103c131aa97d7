"""People's use cases, the same for the CLI, the API and the UI: ``accounts`` (sign-in, TOTP,
preferences, an admin's changes to accounts), ``checklists`` (sign-offs on their items) and
``approvals`` (procedure steps that wait for a person's decision).

Each function of those ``upkeep.people`` modules validates, audits and commits in one transaction
itself, so the adapters call them as they are: they name them here and never import the people
layer (``[tool.importlinter]``). A module is imported on first use, as ``upkeep.app.terms`` does:
``from upkeep.app.people import accounts`` loads the accounts and nothing else.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

MODULES = ("accounts", "approvals", "checklists")

__all__ = list(MODULES)


def __getattr__(name: str) -> Any:
    if name not in MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = import_module(f"upkeep.people.{name}")
    globals()[name] = module
    return module

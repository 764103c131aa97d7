"""The words the adapters speak in, defined in the layers below and named here, so that the CLI,
the API and the UI import the application layer only (``[tool.importlinter]``): the task model
and its parts, run statuses and outcomes, tiers, schedules, the handler registry and the marks of
host-scoped fields, the store and its records.

Each is imported on first use (a CLI command loads what it names, nothing more); ``_FROM`` says
where each comes from.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_FROM = {
    "upkeep.engine.hostscope": ("ALSO_NAMES", "ANY_NAME", "HOST_SCOPED", "INVENTORY_REFS"),
    "upkeep.engine.registry": (
        "INVENTORY_NAMES",
        "OVERRIDABLE",
        "REGISTRY",
        "RUN_FLAGS",
        "Registry",
        "format_validation_error",
    ),
    "upkeep.engine.schedules": ("explain_schedule", "validate_timezone"),
    "upkeep.engine.taskspec": (
        "TIER_SCHEDULES",
        "TIERS",
        "AffectsSpec",
        "AfterSpec",
        "NotifySpec",
        "TaskSpec",
        "validate_task",
    ),
    "upkeep.store.db": ("Store", "redact_url"),
    "upkeep.store.states": ("ACTIVE_STATUSES", "ALL_STATUSES", "OUTCOMES", "TERMINAL_STATUSES"),
    "upkeep.store.records": ("Records", "load_targets"),
}
_MODULE = {name: module for module, names in _FROM.items() for name in names}

__all__ = sorted(_MODULE)


def __getattr__(name: str) -> Any:
    module = _MODULE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value

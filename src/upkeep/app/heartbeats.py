"""Heartbeat monitors' use cases and words, the same for the CLI, the API and the UI: ``monitors``
(list, show, create, edit, delete, pause; the module, or its functions by name), receiving a ping
(``record_ping``), checking upkeep.yaml's ``heartbeats:`` (``validate_heartbeats``), the statuses
and the alert prefix of ``upkeep.heartbeats.state``, a monitor's name pattern and default grace.

They are ``upkeep.heartbeats``'s, named here so that the adapters import the application layer
only (``[tool.importlinter]``); each is imported on first use, as ``upkeep.app.terms`` does, so
``upkeep heartbeats list`` loads the monitors and nothing of the pings or the file's section.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_FROM = {
    "upkeep.heartbeats.monitors": ("get_heartbeat", "list_heartbeats", "ping_urls", "set_paused"),
    "upkeep.heartbeats.pings": ("BODY_LIMIT", "Ping", "UnknownPings", "record_ping"),
    "upkeep.heartbeats.state": ("ALERT_PREFIX", "STATUSES"),
    "upkeep.heartbeats.spec": ("DEFAULT_GRACE", "NAME_PATTERN"),
}
_WHERE = {name: (module, name) for module, names in _FROM.items() for name in names}
_WHERE["validate_heartbeats"] = ("upkeep.heartbeats.config", "validate")  # a name that says what it checks
_WHERE["monitors"] = ("upkeep.heartbeats.monitors", None)  # the module itself

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _WHERE[name]
    value = import_module(module)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value
    return value

"""``heartbeats:`` in upkeep.yaml: validated, diffed, applied and exported as tasks are.

``upkeep apply`` creates and updates the monitors the file lists and takes over API-made ones
of the same name; with ``--prune`` it deletes file-made monitors the file no longer lists (never
API-made ones). A monitor's token and pings survive every apply: an update changes the spec only.
A file-made monitor changed through the API since the last apply is reported as drift and the
file's values are restored. ``upkeep export`` writes the monitors back (never their tokens).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from upkeep.errors import ConfigError, UserError
from upkeep.heartbeats import monitors
from upkeep.heartbeats.spec import compact, normalized, validate_heartbeat
from upkeep.secrets import redact
from upkeep.store.db import Store
from upkeep.yamlload import ShallowLoader

SECTION = "heartbeats"


def _item_lines(path: Path) -> list[int]:
    """1-based line of each item of the top-level ``heartbeats:`` list (for error messages)."""
    try:
        root = yaml.compose(path.read_text(), Loader=ShallowLoader)
    except (OSError, yaml.YAMLError):
        return []
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if getattr(key, "value", None) == SECTION and isinstance(value, yaml.SequenceNode):
                return [item.start_mark.line + 1 for item in value.value]
    return []


def validate(items: list[Any], path: Path) -> list[dict[str, Any]]:
    """Every monitor of the file, normalized; the first problem raises one ConfigError naming the
    file, its line, the monitor and the field."""
    lines = _item_lines(path)
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(items):
        where = f"{path.name} line {lines[index]}" if index < len(lines) else path.name
        try:
            spec = validate_heartbeat(raw, where="heartbeat" if isinstance(raw, dict) else f"heartbeat #{index + 1}")
        except UserError as exc:
            message = exc.message
            if exc.field and exc.field not in message:
                message = message.replace(": ", f": {exc.field}: ", 1) if ": " in message else f"{exc.field}: {message}"
            raise ConfigError(f"{where}: {message}", hint=exc.hint, field=exc.field) from None
        if spec.name in seen:
            raise ConfigError(
                f"{where}: heartbeat {spec.name!r} is defined twice (also heartbeat #{seen[spec.name] + 1})",
                hint="heartbeat names must be unique",
            )
        seen[spec.name] = index
        out.append(normalized(spec))
    return out


def _show(value: Any) -> str:
    return json.dumps(redact(value), default=str, ensure_ascii=False)


@dataclass
class HeartbeatPlan:
    desired: dict[str, dict[str, Any]] = field(default_factory=dict)
    create: list[str] = field(default_factory=list)
    update: dict[str, list[tuple[str, Any, Any]]] = field(default_factory=dict)  # name -> (field, before, after)
    adopt: list[str] = field(default_factory=list)
    resync: list[str] = field(default_factory=list)  # file-made, unchanged, but the file's record is stale
    delete: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    drift: dict[str, list[str]] = field(default_factory=dict)
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.create or self.update or self.adopt or self.delete)

    def as_dict(self) -> dict[str, Any]:
        return {
            "create": self.create,
            "update": {
                name: [{"field": f, "before": redact(b), "after": redact(a)} for f, b, a in changes]
                for name, changes in self.update.items()
            },
            "adopt": self.adopt,
            "delete": self.delete,
            "orphans": self.orphans,
            "drift": self.drift,
            "unchanged": self.unchanged,
        }

    def summary(self) -> str:
        return f"; heartbeats: {len(self.create)} create, {len(self.update)} update, {len(self.delete)} delete"

    def lines(self) -> list[str]:
        out = []
        for name, fields in sorted(self.drift.items()):
            out.append(
                f"! drift: heartbeat {name} was changed outside the file since the last apply "
                f"({', '.join(fields)}); the file's values are restored"
            )
        for name in self.create:
            spec = self.desired[name]
            out.append(f"+ create heartbeat {name} ({spec['schedule']}, {spec['timezone']}, grace {spec['grace']})")
        for name, changes in sorted(self.update.items()):
            note = " (taken over from the API: now managed by the file)" if name in self.adopt else ""
            out.append(f"~ update heartbeat {name}{note}")
            out.extend(f"    {f}: {_show(b)} → {_show(a)}" for f, b, a in changes)
        for name in self.adopt:
            if name not in self.update:
                out.append(f"~ adopt heartbeat {name} (made by the API; now managed by the file)")
        out.extend(f"- delete heartbeat {name}" for name in self.delete)
        out.extend(
            f"  heartbeat {name} was made by the file but is no longer in it (delete it with --prune)"
            for name in self.orphans
        )
        return out


def plan(items: list[Any], path: Path, store: Store, *, prune: bool) -> HeartbeatPlan:
    """What applying the file's ``heartbeats:`` would change (nothing written)."""
    desired = {spec["name"]: spec for spec in validate(items, path)}
    out = HeartbeatPlan(desired=desired)
    existing = {spec["name"]: (spec, managed_by, file_spec) for spec, managed_by, file_spec in monitors.specs(store)}
    for name, spec in desired.items():
        if name not in existing:
            out.create.append(name)
            continue
        current, managed_by, file_spec = existing[name]
        changes = [(k, current.get(k), v) for k, v in spec.items() if k != "name" and current.get(k) != v]
        if managed_by == "file" and file_spec:
            drift = sorted(k for k, v in file_spec.items() if current.get(k) != v)
            if drift:
                out.drift[name] = drift
        if managed_by != "file":
            out.adopt.append(name)
        if changes:
            out.update[name] = changes
        elif managed_by == "file":
            out.unchanged += 1
            if file_spec != spec:
                out.resync.append(name)
    for name, (_spec, managed_by, _file_spec) in sorted(existing.items()):
        if name not in desired and managed_by == "file":
            (out.delete if prune else out.orphans).append(name)
    return out


def apply(heartbeats: HeartbeatPlan, store: Store, *, actor: str, now: datetime) -> None:
    """Carry out a plan (every monitor was validated when it was made)."""
    for name in heartbeats.create:
        monitors.create_heartbeat(store, heartbeats.desired[name], actor=actor, now=now, managed_by="file")
    for name in sorted(set(heartbeats.update) | set(heartbeats.adopt) | set(heartbeats.resync)):
        monitors.update_heartbeat(store, name, heartbeats.desired[name], actor=actor, now=now, managed_by="file")
    for name in heartbeats.delete:
        monitors.delete_heartbeat(store, name, actor=actor, now=now)


def export(store: Store, *, file_only: bool = False) -> list[dict[str, Any]]:
    """The monitors as upkeep.yaml's ``heartbeats:`` (defaults left out; tokens never written)."""
    return [compact(spec) for spec, _managed_by, _file_spec in monitors.specs(store, file_only=file_only)]

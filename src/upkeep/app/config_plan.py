"""What ``upkeep apply`` would change: the diff between upkeep.yaml (as ``upkeep.config_file`` loads
and validates it) and the store, section by section; nothing is written here.
``upkeep.app.config`` applies the plan in one transaction and exports the store back as a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from upkeep import secrets as secret_refs
from upkeep.app import silence_file
from upkeep.app.silence_file import SilencePlan
from upkeep.app.views import task_spec_of
from upkeep.config_file import LoadedConfig, iso_utc, plain_secret_warnings, validate_targets, validate_tasks
from upkeep.engine import taskgraph
from upkeep.engine.registry import Registry
from upkeep.errors import ConfigError
from upkeep.heartbeats import config as heartbeat_config
from upkeep.heartbeats.config import HeartbeatPlan
from upkeep.store.models import ScheduledTask
from upkeep.store.records import CONFIG_DOMAIN, Records


def stored_spec(task) -> dict[str, Any]:
    """A stored task's spec in the shape ``normalized_spec`` gives a task of the file (so they compare)."""
    spec = task_spec_of(task)
    spec["schedule_anchor"] = iso_utc(spec.get("schedule_anchor"))
    return spec


# --- the diff -------------------------------------------------------------------------------------


class _Unset:
    def __repr__(self) -> str:
        return "(unset)"


_MISSING = _Unset()


@dataclass
class FieldChange:
    field: str
    before: Any
    after: Any

    def render(self) -> str:
        return f"{self.field}: {_show(self.before)} → {_show(self.after)}"


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(unset)"
    return json.dumps(secret_refs.redact(value), default=str, ensure_ascii=False)


def _plain(value: Any) -> Any:
    return None if value is _MISSING else secret_refs.redact(value)


@dataclass
class Diff:
    create: list[dict[str, Any]] = field(default_factory=list)  # normalized specs
    update: dict[str, list[FieldChange]] = field(default_factory=dict)
    adopt: list[str] = field(default_factory=list)  # API-made tasks the file takes over
    delete: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)  # file-made tasks no longer in the file (no --prune)
    resync: list[str] = field(default_factory=list)  # drifted tasks the file now agrees with: record that
    unchanged: int = 0
    drift: dict[str, list[str]] = field(default_factory=dict)
    config: dict[str, list[str]] = field(default_factory=dict)  # "targets"/"channels" -> changed entries
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False
    heartbeats: HeartbeatPlan = field(default_factory=HeartbeatPlan)
    silences: SilencePlan = field(default_factory=SilencePlan)

    @property
    def changed(self) -> bool:
        return bool(
            self.create
            or self.update
            or self.adopt
            or self.delete
            or self.config
            or self.heartbeats.changed
            or self.silences.changed
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "create": [t["name"] for t in self.create],
            "update": {
                k: [{"field": c.field, "before": _plain(c.before), "after": _plain(c.after)} for c in v]
                for k, v in self.update.items()
            },
            "adopt": self.adopt,
            "delete": self.delete,
            "orphans": self.orphans,
            "unchanged": self.unchanged,
            "drift": self.drift,
            "config": self.config,
            "warnings": self.warnings,
            "heartbeats": self.heartbeats.as_dict(),
            "silences": self.silences.as_dict(),
        }

    def lines(self) -> list[str]:
        out = [f"warning: {w}" for w in self.warnings]
        for name, fields in sorted(self.drift.items()):
            restored = name in self.update
            out.append(
                f"! drift: task {name} was changed outside the file since the last apply "
                f"({', '.join(fields)}); "
                + ("the file's values are restored" if restored else "the file now matches the database")
            )
        for spec in self.create:
            schedule = spec.get("schedule") or "manual only"
            out.append(f"+ create task {spec['name']} ({spec['type']}, {schedule})")
        for name, changes in sorted(self.update.items()):
            note = " (taken over from the API: now managed by the file)" if name in self.adopt else ""
            out.append(f"~ update task {name}{note}")
            out.extend(f"    {c.render()}" for c in changes)
        for name in self.adopt:
            if name not in self.update:
                out.append(f"~ adopt task {name} (made by the API; now managed by the file)")
        for name in self.delete:
            out.append(f"- delete task {name}")
        for name in self.orphans:
            out.append(f"  task {name} was made by the file but is no longer in it (delete it with --prune)")
        for section, entries in self.config.items():
            out.append(f"~ {section}: {', '.join(entries)}")
        out.extend(self.heartbeats.lines())
        out.extend(self.silences.lines())
        total = len(self.create) + len(self.update) + len(self.delete)
        if not self.changed:
            out.append(f"no changes ({self.unchanged} task(s) unchanged)")
        else:
            verb = "would change" if self.dry_run else "changed"
            out.append(
                f"{verb}: {len(self.create)} create, {len(self.update)} update, "
                f"{len(self.delete)} delete; {self.unchanged} unchanged ({total} task change(s))"
                + (self.heartbeats.summary() if self.heartbeats.changed else "")
                + (self.silences.summary() if self.silences.changed else "")
            )
            if self.dry_run:
                out.append("dry run: nothing was written")
        return out


def _field_changes(before: dict[str, Any], after: dict[str, Any]) -> list[FieldChange]:
    changes: list[FieldChange] = []
    for key, new in after.items():
        if key == "name":
            continue
        if key == "schedule_anchor" and new is None:
            continue  # not set in the file: the stored anchor (creation time) stays
        old = before.get(key)
        if old == new:
            continue
        if key == "config" and isinstance(old, dict) and isinstance(new, dict):
            for sub in sorted(set(old) | set(new)):
                if old.get(sub, _MISSING) != new.get(sub, _MISSING):
                    changes.append(FieldChange(f"config.{sub}", old.get(sub, _MISSING), new.get(sub, _MISSING)))
        else:
            changes.append(FieldChange(key, old, new))
    return changes


def _section_changes(kind: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    entries = []
    flat_old = _flatten(old, depth=2 if kind == "targets" else 1)
    flat_new = _flatten(new, depth=2 if kind == "targets" else 1)
    for key in sorted(set(flat_old) | set(flat_new)):
        if key not in flat_old:
            entries.append(f"{key} added")
        elif key not in flat_new:
            entries.append(f"{key} removed")
        elif flat_old[key] != flat_new[key]:
            entries.append(f"{key} changed")
    return entries


def _flatten(value: dict[str, Any], depth: int) -> dict[str, Any]:
    if depth <= 1:
        return dict(value)
    out = {}
    for k, v in value.items():
        if isinstance(v, dict) and v:
            out.update({f"{k}.{kk}": vv for kk, vv in _flatten(v, depth - 1).items()})
        else:
            out[k] = v
    return out


# --- the plan of apply ----------------------------------------------------------------------------


def plan(loaded: LoadedConfig, store, *, prune: bool, registry: Registry | None = None) -> tuple[Diff, list]:
    """The diff between the file and the store, and the desired normalized specs (nothing written)."""
    validate_targets(loaded, registry)
    desired = validate_tasks(loaded, registry)
    diff = Diff(
        heartbeats=heartbeat_config.plan(loaded.model.heartbeats, loaded.path, store, prune=prune),
        silences=silence_file.plan(loaded, store, prune=prune),
    )
    for section in ("targets", "channels"):
        value = getattr(loaded.model, section)
        data = value if section == "targets" else {k: v.model_dump() for k, v in value.items()}
        diff.warnings.extend(
            f"{p} holds a plain-text secret: write ${{env:NAME}} instead" for p in plain_secret_warnings(data, section)
        )
    for spec in desired:
        diff.warnings.extend(
            f"{p} holds a plain-text secret: write ${{env:NAME}} instead"
            for p in plain_secret_warnings(spec["config"], f"tasks.{spec['name']}.config")
        )
    with store.read() as s:
        existing = {t.name: t for t in s.execute(sa.select(ScheduledTask)).scalars()}
        current = {name: stored_spec(t) for name, t in existing.items()}
        managed = {name: t.managed_by for name, t in existing.items()}
        file_specs = {name: t.file_spec for name, t in existing.items()}
    wanted = {spec["name"] for spec in desired}
    _check_graph(loaded, desired, current, managed, prune)
    for spec in desired:
        name = spec["name"]
        if name not in current:
            diff.create.append(spec)
            continue
        if managed[name] == "file" and file_specs[name]:
            last = {**file_specs[name], "schedule_anchor": iso_utc(file_specs[name].get("schedule_anchor"))}
            drift = sorted(k for k, v in last.items() if k in current[name] and current[name][k] != v)
            if drift:
                diff.drift[name] = drift
        changes = _field_changes(current[name], spec)
        if managed[name] != "file":
            diff.adopt.append(name)
        if changes:
            diff.update[name] = changes
        elif managed[name] == "file":
            diff.unchanged += 1
            if name in diff.drift:
                diff.resync.append(name)
    for name in sorted(set(current) - wanted):
        if managed[name] == "file":
            (diff.delete if prune else diff.orphans).append(name)
    records = Records(store, CONFIG_DOMAIN)
    new_targets = loaded.model.targets
    new_channels = {k: v.model_dump() for k, v in loaded.model.channels.items()}
    for section, new in (("targets", new_targets), ("channels", new_channels)):
        old = records.get(section, {}) or {}
        if old != new:
            diff.config[section] = _section_changes(section, old, new) or ["changed"]
    return diff, desired


def _check_graph(
    loaded: LoadedConfig, desired: list[dict[str, Any]], current: dict[str, Any], managed: dict[str, str], prune: bool
) -> None:
    """The tasks' ``after:`` as they will be once applied: no unknown name, no cycle (path named)."""
    kept = {name: spec for name, spec in current.items() if not (prune and managed[name] == "file")}
    final = {**kept, **{spec["name"]: spec for spec in desired}}
    edges = {name: list((spec.get("after") or {}).get("tasks", [])) for name, spec in final.items()}
    try:
        taskgraph.check(edges, set(edges))
    except taskgraph.GraphError as exc:
        index = next((i for i, spec in enumerate(desired) if spec["name"] == exc.task), None)
        where = loaded.where(index) if index is not None else str(loaded.path)
        raise ConfigError(f"{where}: {exc.message}", hint=exc.hint) from None

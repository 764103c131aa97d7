"""``silences:`` in upkeep.yaml: validated, diffed, applied and exported as tasks are.

Each item is ``{match: {...}, windows: [...], until: TIME, reason: TEXT}`` (``upkeep.notify.silences``
says what they mean). A silence is known by its match, windows and until: changing one of them
replaces the silence, changing the reason updates it. ``upkeep apply`` creates the file's
silences, takes over API-made ones that say the same, and with ``--prune`` deletes file-made ones
the file no longer lists (never API-made ones). ``upkeep export`` writes them back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from upkeep.app import alerts as use_cases
from upkeep.errors import ConfigError, UserError
from upkeep.notify.silences import describe_match, validate_silence
from upkeep.store.db import Store
from upkeep.store.models import Heartbeat, ScheduledTask, Silence

SECTION = "silences"
ITEM_KEYS = ("match", "windows", "until", "reason")


def _key(item: dict[str, Any]) -> str:
    return json.dumps([item["match"], item["windows"], item["until"]], sort_keys=True)


def _until(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        raise ValueError("must be a time such as 2030-01-01T08:00:00+01:00")
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def describe(item: dict[str, Any]) -> str:
    parts = [describe_match(item["match"])]
    if item["windows"]:
        parts.append(f"during {', '.join(item['windows'])}")
    if item["until"]:
        parts.append(f"until {item['until']}")
    return " ".join(parts)


def validate(loaded: Any, store: Store | None = None) -> list[dict[str, Any]]:
    """The file's silences, normalized; the first problem raises one ConfigError naming the file,
    its line and the field (``silences.0.windows.0``). Names a silence matches must exist: targets
    and channels in the file; with the store, tasks and heartbeat monitors in the file or the store."""
    items = loaded.model.silences
    known = {
        "target": {f"{kind}.{name}" for kind, entries in loaded.model.targets.items() for name in entries},
        "channel": set(loaded.model.channels),
    }
    if store is not None:
        known["task"] = {t.get("name") for t in loaded.model.tasks if isinstance(t, dict)}
        known["heartbeat"] = {h.get("name") for h in loaded.model.heartbeats if isinstance(h, dict)}
        with store.read() as s:
            known["task"] |= set(s.execute(sa.select(ScheduledTask.name)).scalars())
            known["heartbeat"] |= set(s.execute(sa.select(Heartbeat.name)).scalars())
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}

    def fail(parts: list[str], message: str, hint: str | None = None) -> ConfigError:
        where = loaded.where_at([SECTION, *parts])
        return ConfigError(f"{where}: {'.'.join([SECTION, *parts])}: {message}", hint=hint)

    for index, raw in enumerate(items):
        at = [str(index)]
        if not isinstance(raw, dict):
            raise fail(at, "must be a mapping with match, windows, until, reason")
        unknown = sorted(set(raw) - set(ITEM_KEYS))
        if unknown:
            raise fail([*at, unknown[0]], "unknown key", hint=f"a silence takes {', '.join(ITEM_KEYS)}")
        try:
            until = _until(raw.get("until"))
        except ValueError as exc:
            raise fail([*at, "until"], str(exc)) from None
        try:
            match, windows = validate_silence(raw.get("match"), raw.get("windows") or [], until)
        except UserError as exc:
            raise fail([*at, *(exc.field or "match").split(".")], exc.message, exc.hint) from None
        for key, value in match.items():
            if key in known and value not in known[key]:
                names = ", ".join(sorted(n for n in known[key] if n)) or "none"
                raise fail([*at, "match", key], f"{value!r} is not a {key} of this instance", hint=f"known: {names}")
        reason = raw.get("reason") or ""
        if not isinstance(reason, str):
            raise fail([*at, "reason"], "must be text")
        item = {"match": match, "windows": windows, "until": until.isoformat() if until else None, "reason": reason}
        if _key(item) in seen:
            raise fail(at, f"the same silence as silences.{seen[_key(item)]}", hint="merge their reasons")
        seen[_key(item)] = index
        out.append(item)
    return out


@dataclass
class SilencePlan:
    create: list[dict[str, Any]] = field(default_factory=list)
    update: list[tuple[int, dict[str, Any], str]] = field(default_factory=list)  # id, desired, old reason
    adopt: list[int] = field(default_factory=list)
    delete: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    orphans: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    ended: list[dict[str, Any]] = field(default_factory=list)  # in the file, until passed: nothing to do
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.create or self.update or self.delete)

    def as_dict(self) -> dict[str, Any]:
        return {
            "create": [describe(i) for i in self.create],
            "update": [
                {"id": sid, "silence": describe(i), "reason": [old, i["reason"]]} for sid, i, old in self.update
            ],
            "adopt": self.adopt,
            "delete": [{"id": sid, "silence": describe(i)} for sid, i in self.delete],
            "orphans": [{"id": sid, "silence": describe(i)} for sid, i in self.orphans],
            "unchanged": self.unchanged,
        }

    def summary(self) -> str:
        return f"; silences: {len(self.create)} create, {len(self.update)} update, {len(self.delete)} delete"

    def lines(self) -> list[str]:
        out = [f"warning: silence {describe(i)} has ended: remove it from upkeep.yaml" for i in self.ended]
        out += [f"+ create silence {describe(i)}" for i in self.create]
        for sid, item, old in self.update:
            note = " (taken over from the API: now managed by the file)" if sid in self.adopt else ""
            out.append(f"~ update silence {sid} {describe(item)}{note}")
            if old != item["reason"]:
                out.append(f"    reason: {json.dumps(old)} → {json.dumps(item['reason'])}")
        out += [f"- delete silence {sid} {describe(i)}" for sid, i in self.delete]
        out += [
            f"  silence {sid} {describe(i)} was made by the file but is no longer in it (delete it with --prune)"
            for sid, i in self.orphans
        ]
        return out


def _existing(store: Store, now: datetime) -> list[tuple[int, dict[str, Any], str]]:
    """``(id, item, managed_by)`` of every silence that has not ended."""
    with store.read() as s:
        rows = s.execute(
            sa.select(Silence).where(sa.or_(Silence.until.is_(None), Silence.until > now)).order_by(Silence.id)
        ).scalars()
        return [
            (
                row.id,
                {
                    "match": dict(row.match or {}),
                    "windows": list(row.windows or []),
                    "until": row.until.isoformat() if row.until else None,
                    "reason": row.reason,
                },
                row.managed_by,
            )
            for row in rows
        ]


def plan(loaded: Any, store: Store, *, prune: bool, now: datetime | None = None) -> SilencePlan:
    """What applying the file's ``silences:`` would change (nothing written)."""
    now = now or datetime.now(UTC)
    out = SilencePlan()
    existing = {_key(item): (sid, item, managed_by) for sid, item, managed_by in _existing(store, now)}
    wanted = set()
    for item in validate(loaded, store):
        if item["until"] and datetime.fromisoformat(item["until"]) <= now:
            out.ended.append(item)
            continue
        wanted.add(_key(item))
        found = existing.get(_key(item))
        if found is None:
            out.create.append(item)
            continue
        sid, current, managed_by = found
        if managed_by != "file":
            out.adopt.append(sid)
        if managed_by != "file" or current["reason"] != item["reason"]:
            out.update.append((sid, item, current["reason"]))
        else:
            out.unchanged += 1
    for key, (sid, item, managed_by) in existing.items():
        if key not in wanted and managed_by == "file":
            (out.delete if prune else out.orphans).append((sid, item))
    return out


def apply(silences: SilencePlan, store: Store, *, actor: str, now: datetime) -> None:
    for item in silences.create:
        use_cases.create_silence(
            store,
            match=item["match"],
            windows=item["windows"],
            until=_until(item["until"]),
            reason=item["reason"],
            actor=actor,
            now=now,
            managed_by="file",
        )
    for sid, item, _old in silences.update:
        use_cases.update_silence(store, sid, reason=item["reason"], actor=actor, now=now, managed_by="file")
    for sid, _item in silences.delete:
        use_cases.delete_silence(store, sid, actor=actor, now=now)


def export(store: Store, *, file_only: bool = False) -> list[dict[str, Any]]:
    """The silences in force as upkeep.yaml's ``silences:`` (empty fields left out)."""
    out = []
    for _sid, item, managed_by in _existing(store, datetime.now(UTC)):
        if file_only and managed_by != "file":
            continue
        out.append({k: v for k, v in item.items() if v or k == "match"})
    return out

"""``upkeep apply`` and ``upkeep export``: the store reconciled to upkeep.yaml, and written back.

``apply_file`` validates everything first (``upkeep.app.config_plan.plan``: a bad task means nothing
is written), then, in ONE transaction (``Store.transaction``), creates, updates and (with
``prune``) deletes tasks, reconciles heartbeats, silences, targets and channels, and audits the
apply: a store failure half-way leaves nothing half applied. Only what the file made
(``managed_by == "file"``) is ever deleted. Drift (a file-made task changed since the file last
applied it) is reported, and the file's version is restored.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import yaml

from upkeep import secrets as secret_refs
from upkeep.app.config_plan import Diff, plan, stored_spec
from upkeep.config_file import LoadedConfig, compact_spec, load_config
from upkeep.engine.registry import REGISTRY, Registry
from upkeep.settings import Settings

log = logging.getLogger("upkeep.config_file")  # the serve log's name for apply lines, as before


def apply_file(
    settings: Settings,
    store,
    *,
    actor: str,
    prune: bool,
    dry_run: bool,
    quiet: bool = False,
    path: str | os.PathLike | None = None,
    echo=print,
    registry: Registry | None = None,
) -> Diff:
    """Reconcile the store to the config file and print the diff; returns it.

    Everything is validated first: a bad task means nothing is written.
    """
    from upkeep.app.usecases import Upkeep

    loaded = load_config(path or settings.config_path)
    diff, desired = plan(loaded, store, prune=prune, registry=registry)
    diff.dry_run = dry_run
    if dry_run:
        return _report(diff, loaded, quiet, echo)
    service = Upkeep(settings, store, registry=registry or REGISTRY, trusted=True)  # the file is the root of trust
    with store.transaction():
        _record_secret_names(store, loaded)
        if diff.changed or diff.resync or diff.heartbeats.resync:
            _reconcile(service, diff, desired, loaded, actor)
    if diff.changed or diff.resync or diff.heartbeats.resync:
        service._wake()  # the scheduler sleeping until its next slot sees the committed tasks
    return _report(diff, loaded, quiet, echo)


def _reconcile(service, diff: Diff, desired: list[dict[str, Any]], loaded: LoadedConfig, actor: str) -> None:
    from upkeep.app import silence_file
    from upkeep.heartbeats import config as heartbeat_config
    from upkeep.store.records import CONFIG_DOMAIN, Records

    store = service.store
    by_name = {spec["name"]: spec for spec in desired}
    for spec in diff.create:
        data = {k: v for k, v in spec.items() if not (k == "schedule_anchor" and v is None)}
        service.create_task(data, actor=actor, managed_by="file", check_graph=False)
    for name in sorted(set(diff.update) | set(diff.adopt) | set(diff.resync)):
        spec = by_name[name]
        changes = {k: v for k, v in spec.items() if not (k == "schedule_anchor" and v is None)}
        service.update_task(name, changes, actor=actor, managed_by="file", check_graph=False)
    for name in diff.delete:
        service.delete_task(name, actor=actor, check_graph=False)
    heartbeat_config.apply(diff.heartbeats, store, actor=actor, now=service.clock.now())
    silence_file.apply(diff.silences, store, actor=actor, now=service.clock.now())
    records = Records(store, CONFIG_DOMAIN)
    if "targets" in diff.config:
        records.put("targets", loaded.model.targets)
    if "channels" in diff.config:
        records.put("channels", {k: v.model_dump() for k, v in loaded.model.channels.items()})
    if diff.changed:
        service.record_audit(
            actor,
            "apply",
            "config",
            str(loaded.path),
            after={k: v for k, v in diff.as_dict().items() if k != "update"},
            detail=f"{len(diff.create)} created, {len(diff.update)} updated, {len(diff.delete)} deleted",
        )


def _record_secret_names(store, loaded: LoadedConfig) -> None:
    """The names of every ``${env:...}`` the file references (server, targets, channels, tasks), so
    runs and alerts scrub all of their values (``upkeep.engine.execute.instance_secrets``)."""
    from upkeep.store.records import CONFIG_DOMAIN, Records

    names = sorted(secret_refs.find_refs(loaded.model.model_dump()))
    records = Records(store, CONFIG_DOMAIN)
    if records.get("secret_names") != names:
        records.put("secret_names", names)


def _report(diff: Diff, loaded: LoadedConfig, quiet: bool, echo) -> Diff:
    if quiet:
        for line in diff.lines():
            if diff.changed or line.startswith(("warning", "!")):
                log.info("apply %s: %s", loaded.path.name, line)
    else:
        for line in diff.lines():
            echo(line)
    return diff


# --- export ---------------------------------------------------------------------------------------


def export_config(store, *, file_only: bool = False, server: dict[str, Any] | None = None) -> str:
    """The store's targets, channels and tasks as upkeep.yaml text (applies back with zero changes)."""
    from upkeep.app import silence_file
    from upkeep.heartbeats import config as heartbeat_config
    from upkeep.store.models import ScheduledTask
    from upkeep.store.records import CONFIG_DOMAIN, Records

    records = Records(store, CONFIG_DOMAIN)
    with store.read() as s:
        query = sa.select(ScheduledTask).order_by(ScheduledTask.name)
        if file_only:
            query = query.where(ScheduledTask.managed_by == "file")
        tasks = [compact_spec(stored_spec(t)) for t in s.execute(query).scalars()]
    document: dict[str, Any] = {"version": 1}
    if server:
        document["server"] = server
    document["targets"] = records.get("targets", {}) or {}
    document["channels"] = records.get("channels", {}) or {}
    document["tasks"] = tasks
    heartbeats = heartbeat_config.export(store, file_only=file_only)
    if heartbeats:
        document["heartbeats"] = heartbeats
    silences = silence_file.export(store, file_only=file_only)
    if silences:
        document["silences"] = silences
    header = (
        f"# upkeep.yaml exported {datetime.now(UTC).replace(microsecond=0).isoformat()}"
        f"{' (file-made tasks only)' if file_only else ''}.\n"
        "# Secrets stay ${env:NAME} references. Apply with `upkeep apply -f FILE`.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)

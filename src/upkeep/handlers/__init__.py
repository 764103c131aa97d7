"""Built-in handlers, one package per domain (``audit/``, ``backup/``, ``db/``, ``health/``, ``logs/``,
``system/``, ``trends/``, ``workflow/``, ``housekeeping/``; ``debug`` is one module).
The modules that register ``@handler`` functions or kinds of target are listed here by hand;
``load_builtin`` (the ``upkeep.handlers`` entry point) imports exactly those. Every other module is a
helper of its domain, whatever its name.

``BUILTIN_MODULES`` names the module of every built-in handler name and alias, so a process that
runs one handler (``upkeep run logs.analyze``) imports that module alone; ``BUILTIN_KINDS`` the
module that declares each kind of target, so checking a file's targets imports those modules alone.
Both are written by hand; ``tests/engine/test_registry_index.py`` imports every module under
``upkeep.handlers`` and checks them against the real registrations, so a handler cannot be missed.
"""

from __future__ import annotations

import importlib

BUILTIN_MODULES: dict[str, str] = {
    # name or alias -> module under upkeep.handlers
    "backup.create": "backup.create",
    "backup.run": "backup.create",
    "db.backup": "backup.create",
    "backup.prune": "backup.prune",
    "backup.restore": "backup.restore",
    "backup.recover": "backup.restore",
    "backup.verify": "backup.verify",
    "backup.check": "backup.verify",
    "backup.drill": "backup.drill",
    "backup.dr_test": "backup.drill",
    "capacity.plan": "trends.capacity",
    "capacity.project": "trends.capacity",
    "capacity.sample": "trends.capacity",
    "capacity.collect": "trends.capacity",
    "checklist.run": "workflow.checklist",
    "config.audit": "audit.config",
    "config.check": "audit.config",
    "env.audit": "audit.config",
    "db.analyze": "db.vacuum",
    "postgres.analyze": "db.vacuum",
    "sqlite.analyze": "db.vacuum",
    "db.inspect": "db.inspect",
    "postgres.inspect": "db.inspect",
    "db.health": "db.inspect",
    "sqlite.inspect": "db.inspect",
    "db.reindex": "db.reindex",
    "postgres.reindex": "db.reindex",
    "sqlite.reindex": "db.reindex",
    "db.terminate_sessions": "db.sessions",
    "postgres.terminate_sessions": "db.sessions",
    "db.vacuum": "db.vacuum",
    "postgres.vacuum": "db.vacuum",
    "sqlite.vacuum": "db.vacuum",
    "debug.fail": "debug",
    "debug.noop": "debug",
    "debug.sleep": "debug",
    "deps.check": "audit.deps",
    "dependencies.check": "audit.deps",
    "packages.outdated": "audit.deps",
    "docker.cleanup": "system.docker",
    "docker.prune": "system.docker",
    "health.check": "health.check",
    "health.report": "health.report",
    "logs.analyze": "logs.analyze",
    "logs.analyse": "logs.analyze",
    "logs.errors": "logs.analyze",
    "logs.cleanup": "logs.cleanup",
    "logs.clean": "logs.cleanup",
    "logs.rotate": "logs.rotate",
    "logs.logrotate": "logs.rotate",
    "performance.review": "trends.performance",
    "perf.review": "trends.performance",
    "procedure.execute": "workflow.procedure",
    "report.send": "housekeeping.digest",
    "report.digest": "housekeeping.digest",
    "retention.enforce": "system.retention",
    "runs.cleanup_expired": "housekeeping.runs",
    "gc.cleanup": "housekeeping.runs",
    "runs.cleanup_stale": "housekeeping.runs",
    "stale_run.cleanup": "housekeeping.runs",
    "security.audit": "audit.security",
    "audit.security": "audit.security",
    "shell.run": "system.shell",
    "system.resources": "system.resources",
}


BUILTIN_KINDS: dict[str, str] = {
    # kind of target (``targets.<kind>`` of upkeep.yaml) -> module under upkeep.handlers
    "backups": "backup.targets",
    "databases": "backup.targets",
    "files": "backup.targets",
    "env_files": "audit.config",
    "services": "health.check",
    "logs": "logs.rules",
}


def builtin_modules() -> list[str]:
    """Every module that registers a built-in handler or kind of target, under ``upkeep.handlers``."""
    return sorted(set(BUILTIN_MODULES.values()) | set(BUILTIN_KINDS.values()))


def load_builtin() -> None:
    for module in builtin_modules():
        importlib.import_module(f"{__name__}.{module}")


def load_builtin_for(name: str) -> bool:
    """Import the module of the built-in handler ``name`` (or alias); False when none has it."""
    return _load(BUILTIN_MODULES.get(name))


def load_builtin_kind(kind: str) -> bool:
    """Import the module that declares the built-in kind of target ``kind``; False when none does."""
    return _load(BUILTIN_KINDS.get(kind))


def _load(module: str | None) -> bool:
    if module is None:
        return False
    importlib.import_module(f"{__name__}.{module}")
    return True

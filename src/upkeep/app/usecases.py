"""``Upkeep``: the use case families joined, what an adapter holds (one per process or request
scope): ``Upkeep(settings, store, trusted=...)``. Each family lives in its own module."""

from __future__ import annotations

from upkeep.app.audit import AuditCases
from upkeep.app.runs import RunCases
from upkeep.app.tasks import TaskCases


class Upkeep(TaskCases, RunCases, AuditCases):
    """Operations on tasks, runs and the audit log: each write validates, audits and commits."""

"""Database maintenance: ``db.vacuum`` and ``db.analyze`` (``vacuum``), ``db.reindex`` (``reindex``),
``db.inspect`` (``inspect``) and ``db.terminate_sessions`` (``sessions``) for PostgreSQL servers and
SQLite files (upkeep's own store included). What they share is in ``common``; each engine's code in
``postgres`` (the one model of a PostgreSQL target, and connecting), ``postgres_catalog``,
``postgres_inspect`` and ``sqlite``. Importing this package imports no handler.

Targets come from ``targets.databases`` in ``upkeep.yaml`` (see ``upkeep.handlers.db.postgres``
for the fields): ``url: postgresql://user:${env:PW}@host:port/db`` or ``host/port/user/password/dbname``,
or ``url: sqlite:////path/file.db``. ``target: upkeep`` is upkeep's own store. On PostgreSQL a task
works on the database its target names and connects to no other; ``databases: [names or globs]``
(names of other ``targets.databases`` entries on the same server, or database names) or
``databases: all`` (every connectable non-template database), set in ``upkeep.yaml``, widen that.
Before acting, a ``scope`` event says which databases were chosen and why.

- ``db.vacuum``: ``VACUUM (ANALYZE)`` per table with dead tuples and size before and after. ``full``
  rewrites tables under an ACCESS EXCLUSIVE lock (announced by a warning event). SQLite: a quick
  integrity check, then ``VACUUM`` and ``PRAGMA optimize`` (ANALYZE too with ``analyze``).
- ``db.analyze``: ``ANALYZE`` per table (SQLite: ``ANALYZE`` + ``PRAGMA optimize``).
- ``db.reindex``: ``REINDEX INDEX CONCURRENTLY`` one index at a time, outside a transaction, under
  ``lock_timeout``/``statement_timeout``; first drops INVALID ``*_ccnew``/``*_ccold`` leftovers of
  failed concurrent rebuilds (``DROP INDEX CONCURRENTLY``), and drops the leftover a failed rebuild
  of its own leaves. Index sizes before and after. SQLite: ``REINDEX``.
- ``db.inspect``: one report with documented thresholds (``InspectThresholds``), findings set the
  outcome. SQLite: ``PRAGMA integrity_check`` (problems are critical) and free-page share.
- ``db.terminate_sessions``: the emergency runbook: ends old active / idle-in-transaction / idle
  sessions, never its own, replication or other non-client backends, backup tools
  (``pg_dump``, ``pg_basebackup``, ... by application name or by a ``COPY ... TO stdout`` query) or
  superusers unless ``include_superusers``.

``dry_run`` is honoured everywhere: the plan is logged item by item and returned, nothing runs.
"""

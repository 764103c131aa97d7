"""Backups that are verified by test restores: ``backup.create`` (``create``), ``backup.verify``
(``verify``), ``backup.restore`` (``restore``), ``backup.prune`` (``prune``) and ``backup.drill``
(``drill``). Each source kind implements one ``Source`` interface (``sources/``).

Sources (config ``source``: a target name or an inline dict with ``type``):

- ``postgres``: ``pg_dump -Fc`` (or ``-Fd -j N`` with ``format: directory``) inside an exported
  snapshot; per-table row counts (and with ``table_checksums: true`` per-table
  ``md5(string_agg(row::text, '' ORDER BY pk))``) are taken in that same snapshot. ``compression:
  zstd`` runs ``pg_dump -Z0`` and compresses in-process (sha256 computed in the same pass); ``gzip``
  uses pg_dump's own compression. pg_dump must not be older than the server (``pg_dump_path`` /
  ``pg_bin_dir`` choose another). ``include_globals`` adds ``pg_dumpall --globals-only``.
- ``sqlite``: the online backup API. ``redis``: ``BGSAVE`` and a copy of the RDB file.
- ``files``: a tar archive of ``paths`` minus ``excludes``; never the backup directories themselves.

Inventory (upkeep.yaml ``targets``): ``databases`` (sources and restore targets, see
``targets.py``), ``files`` (file sources), ``backups`` (name -> ``{path, copy_to}``
destinations). Default destination: ``<data_dir>/backups``; artifacts go to ``<dest>/<source>/``.

Every artifact is written under a temporary name, fsynced, renamed, with a manifest beside it
(``manifest.py``). Encryption (``encrypt: true``) is AES-256-GCM with the key from the
environment variable named by ``encryption_key_env`` (format in ``crypto.py``). The catalog
lives in records domain ``backup`` (``catalog.py``). Retention (``retention.py``)
runs after each successful create; the newest verified backup is never deleted.

This package's own names are its public face for the layers above (the app layer, reports): reading
the catalog and the drill history, without reaching into the handlers' modules. Importing it imports
no handler.
"""

from __future__ import annotations

from upkeep.handlers.backup.catalog import DOMAIN as CATALOG_DOMAIN
from upkeep.handlers.backup.catalog import entries, find, sources, summary_row
from upkeep.handlers.backup.drills import DOMAIN as DRILLS_DOMAIN
from upkeep.handlers.backup.drills import estimate, trend

__all__ = [
    "CATALOG_DOMAIN",
    "DRILLS_DOMAIN",
    "default_rpo_hours",
    "entries",
    "estimate",
    "find",
    "sources",
    "summary_row",
    "trend",
]


def default_rpo_hours() -> float:
    """The RPO ``backup.verify`` warns at when its task does not set one."""
    from upkeep.handlers.backup.config import VerifyConfig

    return float(VerifyConfig.model_fields["rpo_hours"].default)

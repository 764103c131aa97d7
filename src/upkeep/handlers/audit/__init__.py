"""Audits that report findings and change nothing: ``security.audit`` (``security``), ``config.audit``
(``config``: ``.env`` files and upkeep.yaml) and ``deps.check`` (``deps``: outdated packages).
Importing this package imports none of them."""

"""The host: ``system.resources`` (``resources``: disk, memory, load), ``docker.cleanup`` (``docker``),
``retention.enforce`` (``retention``: files by age and count) and ``shell.run`` (``shell``).
Importing this package imports none of them."""

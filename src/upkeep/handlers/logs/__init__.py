"""Logs: ``logs.analyze`` (``analyze``, parsing in ``parse/``), ``logs.rotate`` (``rotate``: its rules
and the ``logs`` kind of target in ``rules``, the building blocks in ``rotation`` and ``compress``) and
``logs.cleanup`` (``cleanup``).

Importing this package imports none of them, so running one handler loads its own module alone."""

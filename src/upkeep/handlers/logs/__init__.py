"""Logs: ``logs.analyze`` (``analyze``, parsing in ``parse/``), ``logs.rotate`` (``rotate``, with
the rotation rules of ``rotation`` and ``compress``) and ``logs.cleanup`` (``cleanup``).

Importing this package imports none of them, so running one handler loads its own module alone."""

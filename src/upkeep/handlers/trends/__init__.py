"""Trends over time: ``capacity.sample`` and ``capacity.plan`` (``capacity``: samples, fitted growth,
the date a threshold is crossed) and ``performance.review`` (``performance``: this period against the
previous one). Importing this package imports neither."""

"""Health: ``health.check`` (``check``: services probed concurrently, one probe per kind of target in
``probes/``, with flap damping) and ``health.report`` (``report``: upkeep's own health with the
checks' and logs' latest word). Importing this package imports neither."""

"""upkeep's own housekeeping: ``runs.cleanup_stale`` and ``runs.cleanup_expired`` (``runs``: dead
workers' runs recovered, old run history expired) and ``report.send`` (``digest``: the scheduled
digest sent through the alert channels). Importing this package imports neither."""

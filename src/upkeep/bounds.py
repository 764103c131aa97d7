"""Upper bounds shared by the config models' numeric fields.

Every number a user can set has a documented range in its pydantic ``Field`` (``ge``/``gt`` and
``le``), so the API, ``upkeep.yaml`` and run overrides refuse a value outside it with the field
named, and a value inside it cannot overflow a ``timedelta`` or a database column at run time.
An upper bound also refuses ``inf`` and ``nan``. These are the common ones; a field with a
tighter natural limit (a percentage, a port) says its own.
"""

MINUTE = 60
HOUR = 3600
DAY = 86400

# how long one run, a retry's wait or a task's lateness may be
MAX_TIMEOUT_SECONDS = 30 * DAY
MAX_JITTER_SECONDS = DAY
MAX_BACKOFF_SECONDS = 30 * DAY
MAX_GRACE_SECONDS = 366 * DAY
# a network call, a probe or a wait inside a handler
MAX_CALL_SECONDS = HOUR
MAX_CALL_MS = HOUR * 1000
MAX_MINUTES = 366 * 24 * 60
# ages and retention
MAX_DAYS = 100 * 366
# durations written as text (``30m``, ``26h``): repeat intervals, escalation, heartbeat periods,
# silences, ``@every``
MAX_DURATION_SECONDS = 10 * 366 * DAY
# counts of things (kept backups, samples, files) and sizes
MAX_COUNT = 1_000_000_000
MAX_BYTES = 2**62

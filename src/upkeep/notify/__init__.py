"""Alerts and pings: the alerter loop, apprise channels, alerts as entities (acknowledged,
escalated, resolved), per-target alerts held by maintenance and dependencies, silences and
Healthchecks-style pings.

The alerter runs in the scheduler process (and in ``upkeep serve``), never in workers: it reads
the runs that finished since its cursor from the store, so alerts are right in distributed mode
where runs end on other hosts. See ``alerter`` for the rules, and ``offload`` for the child process
it moves to while many runs finish.
"""

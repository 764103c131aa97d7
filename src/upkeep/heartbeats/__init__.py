"""Heartbeat monitors: jobs upkeep does not run ping ``/ping/{token}``; a missing ping alerts.

``spec`` (what a monitor is), ``state`` (what its columns mean at a time: the one definition of
overdue), ``monitors`` (the use cases: list, show, create, edit, delete, pause), ``pings``
(receiving a ping), ``config`` (``heartbeats:`` in upkeep.yaml: apply and export). The alert rules
run in the alerter (``upkeep.notify.heartbeats``).
"""

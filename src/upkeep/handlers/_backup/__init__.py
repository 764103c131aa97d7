"""Private helpers of the ``backup.*`` handlers (see ``upkeep.handlers.backup``)."""

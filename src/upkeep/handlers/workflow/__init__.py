"""Work of several steps or people: ``procedure.execute`` (``procedure``: a runbook's steps, with
approvals) and ``checklist.run`` (``checklist``: an instance people sign off). Importing this package
imports neither."""

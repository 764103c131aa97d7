"""People: their accounts (``accounts``, ``totp``) and the checklists they sign off (``checklists``).

Each use case is one plain function taking the store, the actor and the time, and writing its
audit entry in the same transaction as its change; the CLI, the API and the UI all call them.
An API key is a machine: ``upkeep.http.security.Principal.is_person`` tells an account from a key.
"""

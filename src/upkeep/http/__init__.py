"""What the REST API (``upkeep.api``) and the admin UI (``upkeep.web``) share over HTTP: who is
calling (API keys, the session cookie, CSRF, the client's address through trusted proxies) and
errors as ``application/problem+json``. Both import this package and the UI imports nothing from
``upkeep.api``, so ``upkeep.api.app`` can mount the UI without an import cycle.
"""

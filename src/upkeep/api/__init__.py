"""The REST API (``/api/v1``) and the admin web UI, served by FastAPI."""

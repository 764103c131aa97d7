"""The FastAPI application. (Minimal: health endpoints; the full API comes with its own module.)"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from upkeep.settings import Settings
from upkeep.store.db import Store


def create_app(settings: Settings, *, store: Store | None = None) -> FastAPI:
    store = store or Store(settings.resolved_database_url)
    app = FastAPI(title="upkeep", version="0.1.0")

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz():
        try:
            store.check_connection()
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "detail": str(exc)}, status_code=503)
        return {"status": "ok", "schema_up_to_date": store.is_up_to_date()}

    return app

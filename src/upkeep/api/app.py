"""The FastAPI application: the REST API under ``/api/v1``, the admin UI at ``/``, health probes.

``create_app(settings, store=store)`` is what ``upkeep serve`` mounts. ``/healthz`` (the scheduler
ticks and the store takes writes, ``upkeep.api.health``) and ``/readyz`` (the database answers)
need no key; everything else does (see ``upkeep.http.security``). OpenAPI is at ``/openapi.json``
and ``/docs``. When ``upkeep.metrics`` exists, its ``install(app, settings, store,
dependencies=[require_viewer])`` adds ``/metrics`` (Prometheus text), readable with a viewer key
like the rest of the API.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from upkeep.api import (
    alerts,
    approvals,
    audit,
    backups,
    checklists,
    handlers,
    heartbeats,
    keys,
    people,
    pings,
    runs,
    sse,
    tasks,
)
from upkeep.api.health import Health as HealthChecks
from upkeep.api.schemas import Health, Liveness
from upkeep.app import Upkeep
from upkeep.app.terms import Store
from upkeep.clock import Clock
from upkeep.http.problems import RETRY_AFTER_SECONDS, ProblemError, install_problem_handlers, problem_responses
from upkeep.http.security import LoginThrottle, Sessions, load_or_create_secret, require_viewer
from upkeep.queries import Queries
from upkeep.settings import Settings

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
DESCRIPTION = """Scheduled maintenance tasks, their runs and the handlers that do the work.

Authenticate with `Authorization: Bearer <API key>` (`upkeep keys create --role viewer|operator|admin`).
viewer reads; operator also runs, cancels, enables and disables; admin also edits tasks and keys.
Errors are `application/problem+json` naming the field at fault.
"""


def create_app(settings: Settings, *, store: Store | None = None, clock: Clock | None = None) -> FastAPI:
    store = store or Store(settings.resolved_database_url)
    app = FastAPI(
        title="upkeep",
        version="0.1.0",
        description=DESCRIPTION,
        docs_url=None,  # served below from packaged assets: the docs work offline too
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.store = store
    app.state.upkeep = Upkeep(settings, store, clock=clock)
    app.state.queries = Queries(store, clock)
    app.state.sessions = Sessions(load_or_create_secret(settings.resolved_data_dir), store)
    app.state.login_throttle = LoginThrottle(store)
    install_problem_handlers(app)

    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(reject_repeated_query)])
    for module in (tasks, runs, sse, handlers, audit, keys, heartbeats, people, checklists, approvals, alerts, backups):
        api.include_router(module.router)
    app.include_router(api)
    pings.install(app, store, settings, app.state.upkeep.clock)

    app.state.health = HealthChecks(store)

    @app.get(
        "/healthz",
        tags=["health"],
        response_model=Liveness,
        response_model_exclude_none=True,
        responses={503: {"model": Liveness, "description": "The scheduler does not tick or the store refuses writes"}},
        summary="The instance does its job",
    )
    def healthz():
        problems = app.state.health.problems()
        if problems:
            body = {"status": "unhealthy", "detail": "; ".join(problems)}
            return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        response_model=Health,
        responses={503: {"model": Health, "description": "The database does not answer"}},
        summary="The database answers",
    )
    def readyz():
        try:
            store.check_connection()
            up_to_date = store.is_up_to_date()
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "detail": str(exc)}, status_code=503)
        return {"status": "ok", "schema_up_to_date": up_to_date}

    _install_metrics(app, settings, store)
    _install_docs(app)

    from upkeep.web.app import install_web

    install_web(app)
    return app


def _install_docs(app: FastAPI) -> None:
    """Swagger UI at ``/docs`` from the swagger-ui-bundle package, not a CDN."""
    import swagger_ui_bundle
    from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.staticfiles import StaticFiles

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} API",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def docs_redirect():
        return get_swagger_ui_oauth2_redirect_html()


def reject_repeated_query(request: Request) -> None:
    """A query parameter given twice is ambiguous (none of them takes a list): answer 422."""
    seen: set[str] = set()
    for key, _value in request.query_params.multi_items():
        if key in seen:
            raise ProblemError(422, f"query parameter {key!r} is given more than once", field=key)
        seen.add(key)


def _install_metrics(app: FastAPI, settings: Settings, store: Store) -> None:
    """``/metrics`` from ``upkeep.metrics``, behind a viewer key (the alerts and metrics layer)."""
    from upkeep import metrics

    count = len(app.router.routes)
    metrics.install(app, settings, store, dependencies=[require_viewer])
    for route in app.router.routes[count:]:
        if not isinstance(route, APIRoute):
            continue
        route.responses = {**problem_responses(401, 403), **route.responses}

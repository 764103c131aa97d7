"""The admin UI, mounted on the API's FastAPI application by ``upkeep.api.app.create_app``.

Pages need a login (the session cookie from ``/login``, see ``upkeep.http.security``); without one
they redirect to ``/login``. Actions (enable, run, edit, cancel) are fetch calls to ``/api/v1``
with the session cookie and the page's CSRF token, so the UI and the API share one code path and
one permission check. ``X-Fragment: 1`` asks a live page for just its refreshing part. Each page
module reads through the application layer (``upkeep.app``), as the API does.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from upkeep.web.alerts import router as alert_pages
from upkeep.web.heartbeats import router as heartbeat_pages
from upkeep.web.login import router as login_pages
from upkeep.web.pages import router as other_pages
from upkeep.web.people import router as people_pages
from upkeep.web.render import HERE, AdminsOnly, LoginRequired, error_page
from upkeep.web.run_pages import router as run_pages
from upkeep.web.task_pages import router as task_pages


def install_web(app: FastAPI) -> None:
    """The UI's pages, its static files and the redirect to /login on the FastAPI ``app``."""
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:  # where browsers look when a page names no icon (the API docs, errors)
        return FileResponse(HERE / "static" / "favicon.ico", media_type="image/x-icon")

    app.include_router(login_pages)
    app.include_router(task_pages)
    app.include_router(run_pages)
    app.include_router(heartbeat_pages)
    app.include_router(people_pages)
    app.include_router(alert_pages)
    app.include_router(other_pages)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(AdminsOnly)
    async def _admins_only(request: Request, exc: AdminsOnly) -> Response:
        return error_page(request, exc.principal, 403, str(exc), nav=exc.nav, heading="Forbidden")

"""Errors as ``application/problem+json`` (RFC 9457), each naming the field at fault.

Every error the API answers has this shape: ``type``, ``title``, ``status``, ``detail``, ``field``
(dotted path such as ``config.seconds`` or ``schedule``), ``hint`` (the fix), and ``errors`` (one
entry per problem when a body has several). A ``UserError`` keeps its own status code; FastAPI's
request validation becomes 422 naming the field; an unknown path is 404. Nothing a client sends
produces a 500.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from upkeep.errors import UserError
from upkeep.secrets import redact_url_password

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://upkeep.dev/problems/"
# what a 503 asks a client to wait before trying again (the store is down, full or locked)
RETRY_AFTER_SECONDS = 5


class FieldError(BaseModel):
    field: str | None = Field(None, description="Dotted path of the field, e.g. config.seconds")
    message: str


class Problem(BaseModel):
    """An error response (RFC 9457 problem details)."""

    type: str = Field(description="URI naming the kind of problem")
    title: str
    status: int
    detail: str
    field: str | None = Field(None, description="The field at fault, when there is one")
    hint: str | None = Field(None, description="How to fix it")
    errors: list[FieldError] = Field(default_factory=list)


class ProblemError(Exception):
    """Raise from a route to answer with a problem."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        field: str | None = None,
        hint: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.hint = hint
        self.errors = errors or []
        self.headers = headers


def _slug(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "-").replace("'", "")
    except ValueError:
        return "error"


def problem_response(
    status: int,
    detail: str,
    *,
    field: str | None = None,
    hint: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body = Problem(
        type=TYPE_BASE + _slug(status),
        title=title,
        status=status,
        detail=redact_url_password(detail),
        field=field,
        hint=hint,
        errors=[FieldError(**e) for e in (errors or [])],
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def loc_to_field(loc: tuple | list, *, skip_body: bool = True) -> str | None:
    parts = [str(p) for p in loc]
    if skip_body and parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or None


def errors_from_validation(exc: ValidationError | RequestValidationError, prefix: str = "") -> list[dict]:
    out = []
    for err in exc.errors():
        field = loc_to_field(err.get("loc", ()))
        if prefix:
            field = f"{prefix}.{field}" if field else prefix
        message = str(err.get("msg", "invalid value"))
        if err.get("type") == "extra_forbidden":
            message = "unknown field (check the spelling)"
        elif err.get("type") == "missing":
            message = "this field is required"
        out.append({"field": field, "message": message})
    return out


FIELD_ALIASES = {"task_type": "type", "window": "windows"}  # service field names -> API body names


def user_error_response(exc: UserError) -> JSONResponse:
    status = exc.status_code if 400 <= exc.status_code < 600 else 422
    field = FIELD_ALIASES.get(exc.field or "", exc.field)
    fields = getattr(exc, "fields", None) or ([field] if field else [])
    return problem_response(
        status,
        exc.message,
        field=field,
        hint=exc.hint,
        errors=[{"field": f, "message": exc.message} for f in fields],
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Turn every error into problem+json."""

    @app.exception_handler(UserError)
    async def _user_error(request: Request, exc: UserError) -> JSONResponse:
        return user_error_response(exc)

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(
            exc.status, exc.detail, field=exc.field, hint=exc.hint, errors=exc.errors, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = errors_from_validation(exc)
        first = errors[0] if errors else {"field": None, "message": "invalid request"}
        detail = "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors)
        return problem_response(422, detail or "invalid request", field=first["field"], errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else _slug(exc.status_code)
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            allowed = allowed_methods(request.app, request.url.path)
            if allowed:
                headers["Allow"] = ", ".join(sorted(allowed))
        return problem_response(exc.status_code, detail, headers=headers or None)

    @app.exception_handler(sa.exc.OperationalError)
    @app.exception_handler(sa.exc.InterfaceError)
    @app.exception_handler(sa.exc.DisconnectionError)
    async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
        """The store is unreachable or refuses the statement (down, full, locked): not a bug of
        the request, and likely to pass shortly."""
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        log.warning("store unavailable on %s %s: %s", request.method, request.url.path, reason)
        return problem_response(
            503,
            f"the store is unavailable: {reason}",
            hint="try again shortly; /healthz says what is wrong",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # a bug: log it, leak nothing
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "internal error (see the server log)")


def allowed_methods(app: FastAPI, path: str) -> set[str]:
    """Every method some route serves at ``path`` (Starlette's 405 names only the first route's)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before nested router contexts: app.routes is flat
        routes: list = list(app.routes)
    else:
        routes = list(iter_route_contexts(app.routes))
    methods: set[str] = set()
    for route in routes:
        regex = getattr(route, "path_regex", None)
        route_methods = getattr(route, "methods", None)
        if regex is not None and route_methods and regex.match(path):
            methods |= set(route_methods)
    return methods


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting problem+json answers (400, a body that cannot be
    parsed, is always among them)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted({400, *statuses}):
        out[status] = {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    return out

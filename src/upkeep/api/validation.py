"""Validation that names the exact field before the application layer (which validates again) runs.

The service raises one ``ConfigError`` per problem with a readable message; the API and the UI's
config form also want *which* field, for every field at fault (``config.seconds``), to show each
error next to its input. These helpers produce a 422 problem with one entry per field.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from upkeep.app.terms import Registry, TaskSpec
from upkeep.errors import ConfigError, UserError
from upkeep.http.problems import FIELD_ALIASES, ProblemError, errors_from_validation


def _raise(errors: list[dict[str, Any]], what: str) -> None:
    first = errors[0]
    detail = "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors)
    raise ProblemError(422, f"invalid {what}: {detail}", field=first["field"], errors=errors)


def check_config(registry: Registry, task_type: str, config: dict[str, Any], *, prefix: str = "config") -> None:
    """422 naming every config field the handler's model rejects."""
    try:
        spec = registry.get(task_type)
    except UserError as exc:
        raise ProblemError(422, exc.message, field="type", hint=exc.hint) from None
    try:
        raw, _flags = spec.split_run_flags(config)  # the one judge of a pre-approved confirm
    except ConfigError as exc:
        raise ProblemError(422, exc.message, field=f"{prefix}.confirm", hint=exc.hint) from None
    try:
        spec.config_model.model_validate(raw)
    except ValidationError as exc:
        _raise(errors_from_validation(exc, prefix=prefix), f"config for {spec.name}")


def check_task(registry: Registry, data: dict[str, Any]) -> None:
    """422 naming the task field at fault (schedule, timezone, windows, type, config.*)."""
    try:
        spec = TaskSpec.model_validate(data)
    except ValidationError as exc:
        _raise(errors_from_validation(exc), "task")
    except UserError as exc:  # validators of time zones and windows raise UserError
        field = FIELD_ALIASES.get(exc.field or "", exc.field)
        raise ProblemError(
            exc.status_code, exc.message, field=field, hint=exc.hint, errors=[{"field": field, "message": exc.message}]
        ) from None
    check_config(registry, spec.type, spec.config)

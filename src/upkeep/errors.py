"""Errors a user can cause, each carrying one clear message and the fix.

The CLI turns a ``UserError`` into one line on stderr and exit code 2; the API turns it into a
4xx ``application/problem+json`` response. Anything else is a bug and may show a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """``did you mean 'x'?`` for the candidates that look like a typo of ``word``, else None."""
    import difflib  # only on the error path

    close = difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.75)
    if not close:
        return None
    return "did you mean " + " or ".join(repr(c) for c in close) + "?"


class UserError(Exception):
    """Something the user can fix: bad input, bad config, unreachable server."""

    status_code = 422

    def __init__(self, message: str, *, hint: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.field = field

    def __str__(self) -> str:
        text = self.message
        if self.field and self.field not in text:
            text = f"{self.field}: {text}"
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


class ConfigError(UserError):
    """The config file or a task's config is invalid."""


class NotFound(UserError):
    status_code = 404


class Conflict(UserError):
    status_code = 409


class Forbidden(UserError):
    status_code = 403


class HostScoped(Forbidden):
    """Values that name something on the host, from a caller that may not set them (see
    ``upkeep.engine.hostscope``); ``fields`` names every one."""

    def __init__(self, message: str, *, fields: list[str], hint: str | None = None):
        super().__init__(message, hint=hint, field=fields[0])
        self.fields = fields


class ConnectionFailed(UserError):
    """A server (database, broker, target) could not be reached."""

    status_code = 503

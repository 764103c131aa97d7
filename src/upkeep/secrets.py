"""Secret references: ``${env:NAME}`` in config, resolved only at run time, never stored resolved.

``redact`` hides values that look like secrets (by key name) in anything shown to a person.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from upkeep.errors import ConfigError

REF_RE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
SECRET_KEY_RE = re.compile(r"(pass(word)?|secret|token|api[_-]?key|private[_-]?key|credentials?)$", re.I)
REDACTED = "***"


def find_refs(value: Any) -> set[str]:
    """Names of all environment variables referenced in ``value``."""
    found: set[str] = set()
    if isinstance(value, str):
        found.update(REF_RE.findall(value))
    elif isinstance(value, Mapping):
        for v in value.values():
            found |= find_refs(v)
    elif isinstance(value, list | tuple):
        for v in value:
            found |= find_refs(v)
    return found


def resolve(value: Any, environ: Mapping[str, str] | None = None, collected: list[str] | None = None) -> Any:
    """A copy of ``value`` with every ``${env:NAME}`` replaced; resolved values go to ``collected``."""
    env = os.environ if environ is None else environ
    if isinstance(value, str):

        def sub(match: re.Match) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(
                    f"secret reference ${{env:{name}}} is not set",
                    hint=f"export {name} in the environment of the upkeep process",
                )
            if collected is not None and env[name]:
                collected.append(env[name])
            return env[name]

        return REF_RE.sub(sub, value)
    if isinstance(value, Mapping):
        return {k: resolve(v, env, collected) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(v, env, collected) for v in value]
    return value


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY_RE.search(key.replace("-", "_")))


def redact(value: Any) -> Any:
    """A copy safe to show: plain-text values under secret-looking keys become ``***``.

    References (``${env:NAME}``) are kept: they name where a secret lives, not the secret.
    Passwords inside URLs (``scheme://user:pass@host``) are hidden too.
    """
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if isinstance(k, str) and is_secret_key(k) and isinstance(v, str) and v and not REF_RE.fullmatch(v):
                out[k] = REDACTED
            else:
                out[k] = redact(v)
        return out
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_url_password(value)
    return value


_URL_PASS_RE = re.compile(r"(?P<pre>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<post>@)", re.I)


def redact_url_password(text: str) -> str:
    def sub(m: re.Match) -> str:
        if REF_RE.fullmatch(m.group("pw")):
            return m.group(0)
        return f"{m.group('pre')}{REDACTED}{m.group('post')}"

    return _URL_PASS_RE.sub(sub, text)


def scrub(text: str, secrets: list[str]) -> str:
    """Replace every occurrence of a resolved secret value in ``text``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return redact_url_password(text)

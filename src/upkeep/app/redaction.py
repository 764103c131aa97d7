"""A last redaction pass over everything the API and the UI show.

``upkeep.secrets.redact`` hides values under secret-looking keys and passwords inside URLs. On top of
that this pass hides:
- secret-looking query parameters in any URL (``?token=...``, ``&api_key=...``);
- ping URLs entirely past the host: a Healthchecks-style URL *is* a credential (anyone who knows
  it can report success), so ``ping_url`` shows as ``https://hc.example/***``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from upkeep.secrets import REDACTED, REF_RE, is_secret_key, redact_url_password

_QUERY_SECRET_RE = re.compile(r"([?&;])([^=&;#\s]+)=([^&;#\s]*)")
URL_KEYS = ("ping_url",)


def _query_sub(match: re.Match) -> str:
    sep, key, value = match.groups()
    if value and is_secret_key(key.lower()) and value != REDACTED:
        return f"{sep}{key}={REDACTED}"
    return match.group(0)


def redact_query(text: str) -> str:
    if "=" not in text or ("?" not in text and "&" not in text):
        return text
    return _QUERY_SECRET_RE.sub(_query_sub, text)


def mask_url(url: str | None) -> str | None:
    """Keep scheme and host, hide the rest (for credentials that are whole URLs)."""
    if not url:
        return url
    if url.startswith("${env:"):
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    if not parts.scheme or not parts.hostname:
        return REDACTED
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/{REDACTED}"


def _string(text: str) -> str:
    if "://" in text:
        text = redact_url_password(text)
    if "=" in text:
        text = redact_query(text)
    return text


def _walk(value: Any) -> Any:
    """``redact``'s rules and the ones above in one pass (a page of tasks is walked per request)."""
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if isinstance(v, str) and v:
                if isinstance(k, str) and k in URL_KEYS:
                    out[k] = mask_url(v)
                elif isinstance(k, str) and is_secret_key(k) and not REF_RE.fullmatch(v):
                    out[k] = REDACTED
                else:
                    out[k] = _string(v)
            elif isinstance(v, Mapping | list | tuple):
                out[k] = _walk(v)
            else:
                out[k] = v
        return out
    if isinstance(value, list | tuple):
        return [_walk(v) for v in value]
    return value


def safe(value: Any) -> Any:
    """``upkeep.secrets.redact`` plus the rules above; use on every payload that leaves the process."""
    return _walk(value)

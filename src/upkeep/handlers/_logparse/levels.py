"""Level names: pino/bunyan numbers, syslog and Python words, all mapped to one small vocabulary."""

from __future__ import annotations

LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")
ERROR_LEVELS = ("error", "fatal")

_WORDS = {
    "trace": "trace",
    "debug": "debug",
    "info": "info",
    "information": "info",
    "notice": "info",
    "warn": "warn",
    "warning": "warn",
    "error": "error",
    "err": "error",
    "fatal": "fatal",
    "critical": "fatal",
    "crit": "fatal",
    "alert": "fatal",
    "emerg": "fatal",
    "emergency": "fatal",
    "panic": "fatal",
}
_NUMBERS = ((60, "fatal"), (50, "error"), (40, "warn"), (30, "info"), (20, "debug"), (10, "trace"))


def normalise_level(raw: str | None) -> str:
    """``"ERROR"``, ``"50"`` (pino/bunyan), ``"warning"`` -> ``error``, ``error``, ``warn``; None -> ``none``."""
    if raw is None or raw == "":
        return "none"
    text = raw.strip().lower()
    if text in _WORDS:
        return _WORDS[text]
    try:
        number = float(text)
    except ValueError:
        return text[:32]
    for floor, name in _NUMBERS:
        if number >= floor:
            return name
    return "trace"


def error_level_literals() -> list[str]:
    """Raw values that mean error or worse (matched case-insensitively in SQL before normalisation)."""
    words = [w for w, n in _WORDS.items() if n in ERROR_LEVELS]
    return sorted(set(words) | {"50", "60", "50.0", "60.0"})

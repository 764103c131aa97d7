"""Level names: pino/bunyan numbers, syslog and Python words, all mapped to one small vocabulary."""

from __future__ import annotations

import math

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
    if not math.isfinite(number):  # "inf", "nan": words, not pino levels
        return text[:32]
    for floor, name in _NUMBERS:
        if number >= floor:
            return name
    return "trace"


def error_candidate_sql(raw: str) -> str:
    """SQL that is true for every raw level :func:`normalise_level` maps to an error level, and cheap.

    It runs once per record, so it looks at the first character only: a level that starts like a
    non-error word (``info``, ``debug``, ``warn``, ``trace``, ``notice``) is not an error, a number is
    one from 50 up, anything else is a candidate. It may be true for a level that is no error
    (``"Exception"``); the exact decision is :func:`normalise_level` on each *distinct* level after
    aggregation. A regular expression here cost about 0.1 s a 5M-line file.
    """
    error_initials = {w[0] for w, n in _WORDS.items() if n in ERROR_LEVELS}
    safe = sorted({w[0] for w in _WORDS} - error_initials)
    codes = ", ".join(str(ord(c)) for c in sorted({c for letter in safe for c in (letter, letter.upper())}))
    lowest = min(floor for floor, name in _NUMBERS if name in ERROR_LEVELS)
    return (
        f"CASE WHEN ascii({raw}) IN ({codes}) THEN false "
        f"WHEN ascii({raw}) BETWEEN 48 AND 57 THEN coalesce(try_cast({raw} AS DOUBLE) >= {lowest}, true) "
        f"ELSE {raw} IS NOT NULL END"
    )

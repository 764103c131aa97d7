"""Reading ``.env``-style files without executing them (``parse_env_text``): what dotenv and docker
compose accept (``KEY=value``, ``export KEY=value``, ``'single'`` and ``"double"`` quoted values,
comments), with every line that a shell would run instead of assign reported as a problem.
``config.audit`` checks what it reads (see ``config``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KEY_RE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.\-]*)\s*=\s?(.*)$", re.S)
SUBSTITUTION_RE = re.compile(r"\$\(|`")


@dataclass
class EnvEntry:
    key: str
    value: str
    line: int
    quote: str = ""  # '' unquoted, "'" or '"'
    substitution: bool = False


@dataclass
class EnvProblem:
    line: int
    check: str
    message: str
    key: str | None = None


@dataclass
class EnvFile:
    entries: list[EnvEntry] = field(default_factory=list)
    problems: list[EnvProblem] = field(default_factory=list)

    def keys(self) -> set[str]:
        return {e.key for e in self.entries}


def _unescape_double(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append({"n": "\n", "t": "\t", "r": "\r"}.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _closing(text: str, quote: str) -> int:
    """Index of the closing quote in ``text`` (which starts after the opening one), or -1."""
    i = 0
    while i < len(text):
        if quote == '"' and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i
        i += 1
    return -1


def parse_env_text(text: str) -> EnvFile:
    """Parse dotenv text into entries and problems. Pure string work: nothing is expanded or run."""
    result = EnvFile()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        number = i + 1
        raw = lines[i]
        i += 1
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = KEY_RE.match(stripped)
        if not match:
            result.problems.append(
                EnvProblem(
                    number,
                    "not_assignment",
                    "line is not a KEY=value assignment (a shell sourcing the file would execute it as a command)",
                )
            )
            continue
        key, rest = match.group(1), match.group(2)
        if rest[:1] in ("'", '"'):
            quote = rest[0]
            body = rest[1:]
            end = _closing(body, quote)
            while end < 0 and i < len(lines):  # a quoted value may span lines
                body += "\n" + lines[i]
                i += 1
                end = _closing(body, quote)
            if end < 0:
                result.problems.append(EnvProblem(number, "syntax", f"unterminated {quote} quote", key))
                continue
            value, after = body[:end], body[end + 1 :].strip()
            if after and not after.startswith("#"):
                result.problems.append(EnvProblem(number, "syntax", "text after the closing quote", key))
            substitution = quote == '"' and bool(SUBSTITUTION_RE.search(value))
            if quote == '"':
                value = _unescape_double(value)
            result.entries.append(EnvEntry(key, value, number, quote, substitution))
        else:
            value = re.split(r"\s+#", rest, maxsplit=1)[0].strip()
            result.entries.append(EnvEntry(key, value, number, "", bool(SUBSTITUTION_RE.search(value))))
    return result

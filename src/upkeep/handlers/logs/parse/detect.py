"""Look at the first lines of a log file: compression, format (json / combined / text) and JSON fields.

Only the head of a file is read here (64 KiB after decompression); the full scan is DuckDB's job.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_BYTES = 64 * 1024
SAMPLE_LINES = 200
FORMATS = ("auto", "json", "combined", "text")

# Candidate keys per role, best first. Dotted names are nested objects (pino's req/res).
TIME_KEYS = ("time", "timestamp", "ts", "@timestamp", "datetime", "date")
LEVEL_KEYS = ("level", "severity", "lvl", "levelname", "log_level")
MESSAGE_KEYS = ("msg", "message", "event", "error")
STATUS_KEYS = ("statusCode", "status", "status_code", "res.statusCode", "response.status", "http_status")
DURATION_KEYS = (
    "durationMs",
    "duration_ms",
    "responseTime",
    "response_time",
    "elapsed_ms",
    "latency_ms",
    "request_time",
    "duration",
    "elapsed",
    "latency",
)
ROUTE_KEYS = ("route", "path", "url", "req.url", "req.path", "request.path", "request.url", "uri")
# Fields whose values are raw URLs (ids and query strings inside): normalised before grouping.
URL_LIKE = frozenset({"path", "url", "req.url", "req.path", "request.path", "request.url", "uri"})
SECONDS_FIELDS = frozenset({"request_time", "upstream_response_time"})

COMBINED_RE = (
    r'^(\S+) \S+ \S+ \[([^\]]+)\] "(?:(\S+) (\S+)[^"]*|[^"]*)" (\d{3}) (\S+)'
    r'(?: "[^"]*" "[^"]*")?(?: ([0-9.]+))?'
)
_COMBINED_PY = re.compile(COMBINED_RE)
TEXT_RE = (
    r"(?i)^\[?(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z| ?[+-]\d\d:?\d\d)?)\]?\s+"
    r"(?:\[?(trace|debug|info|information|notice|warn|warning|error|err|critical|crit|fatal|alert|emerg"
    r"|emergency|panic)\]?:?\s+)?(.*)$"
)


@dataclass
class FileInfo:
    """What the head of one file says about all of it."""

    path: str
    size: int
    compression: str  # none | gzip | zstd
    format: str  # json | combined | text | empty
    fields: dict[str, list[str]] = field(default_factory=dict)  # role -> present keys, best first
    time_kind: str = "iso"  # iso | number | mixed: how the sample's timestamps are written
    error: str | None = None

    def signature(self) -> tuple:
        """Files with the same signature are scanned by one DuckDB call."""
        fields = tuple(sorted((k, tuple(v)) for k, v in self.fields.items()))
        return (self.format, self.compression, self.time_kind, fields)


def sniff_compression(head: bytes) -> str:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return "none"


def read_head(path: Path, compression: str) -> bytes:
    with open(path, "rb") as raw:
        if compression == "none":
            return raw.read(SAMPLE_BYTES)
        # imported only for a compressed file: a plain log's run should not pay for zstandard's import
        if compression == "gzip":
            import gzip

            stream: io.BufferedIOBase | gzip.GzipFile = gzip.GzipFile(fileobj=raw)
            broken: tuple[type[BaseException], ...] = (OSError, EOFError)
        else:
            import zstandard

            stream = zstandard.ZstdDecompressor().stream_reader(raw)
            broken = (OSError, EOFError, zstandard.ZstdError)
        out = bytearray()
        try:
            while len(out) < SAMPLE_BYTES:
                chunk = stream.read(SAMPLE_BYTES - len(out))
                if not chunk:
                    break
                out += chunk
        except broken:
            pass  # a truncated archive: sample what we have; DuckDB reports the rest
        return bytes(out)


def sample_lines(head: bytes) -> list[str]:
    lines = head.decode("utf-8", errors="replace").splitlines()
    if len(head) >= SAMPLE_BYTES and lines:
        lines = lines[:-1]  # the last one is probably cut
    return [line for line in lines if line.strip()][:SAMPLE_LINES]


def _lookup(record: dict, key: str) -> object:
    value: object = record
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def detect_json_fields(records: list[dict], overrides: dict[str, str | None]) -> tuple[dict[str, list[str]], str]:
    """Keys present in the sample per role (a configured field wins) and how time is written."""
    roles = {
        "time": TIME_KEYS,
        "level": LEVEL_KEYS,
        "message": MESSAGE_KEYS,
        "status": STATUS_KEYS,
        "duration": DURATION_KEYS,
        "route": ROUTE_KEYS,
    }
    fields: dict[str, list[str]] = {}
    for role, candidates in roles.items():
        configured = overrides.get(role)
        if configured:
            fields[role] = [configured]
            continue
        present = []
        for key in candidates:
            values = [_lookup(r, key) for r in records]
            values = [v for v in values if v is not None]
            if not values:
                continue
            if role in ("status", "duration") and not any(_numberish(v) for v in values):
                continue  # structlog's status="ok" is no HTTP status
            if role in ("route", "message", "level") and not any(isinstance(v, str | int | float) for v in values):
                continue
            present.append(key)
        if role in ("duration",) and present:
            present = present[:1]  # one duration field, never a mix of units
        if present:
            fields[role] = present
    kinds = set()
    for key in fields.get("time", []):
        for r in records:
            value = _lookup(r, key)
            if value is not None:
                kinds.add("number" if isinstance(value, int | float) and not isinstance(value, bool) else "iso")
    time_kind = kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "iso")
    return fields, time_kind


def _numberish(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def detect_format(lines: list[str]) -> str:
    if not lines:
        return "empty"
    json_like = sum(1 for line in lines if line.lstrip().startswith("{"))
    if json_like * 2 >= len(lines):
        return "json"
    combined = sum(1 for line in lines if _COMBINED_PY.match(line))
    if combined * 2 >= len(lines):
        return "combined"
    return "text"


def inspect_file(path: Path, fmt: str, overrides: dict[str, str | None]) -> FileInfo:
    """Compression, format and fields of one file. Never raises for an unreadable file."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            magic = fh.read(4)
        compression = sniff_compression(magic)
        lines = sample_lines(read_head(path, compression)) if size else []
    except OSError as exc:
        return FileInfo(str(path), 0, "none", "empty", error=exc.strerror or str(exc))
    detected = detect_format(lines)
    info = FileInfo(str(path), size, compression, detected if fmt == "auto" or detected == "empty" else fmt)
    if info.format == "json":
        records = []
        for line in lines:
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                records.append(value)
        info.fields, info.time_kind = detect_json_fields(records, overrides)
    return info

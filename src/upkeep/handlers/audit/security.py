"""``security.audit``: the seed's quarterly security audit as one run with findings.

Checks (each runs only when configured or when its tool and project are present):

- **TLS certificates** of ``tls_hosts`` (``host:port``, ``host`` = port 443, or ``https://`` URLs) and,
  with ``tls_from_services``, of every ``https://`` URL under ``targets.services``: critical when the
  certificate expires within ``cert_critical_days`` (7) or has expired, warning within
  ``cert_warn_days`` (30). The handshake does not verify the chain, so self-signed certificates are
  read too (the same reader ``health.check`` uses). An unreachable host is a warning finding.
- **Dependency vulnerabilities**: ``pip-audit -f json`` for each of ``python_projects`` (a requirements
  file, or a directory holding ``requirements.txt``; pip-audit itself resolves ``pyproject.toml``
  projects given as directories) and ``npm audit --json`` in each of ``npm_projects`` (directories
  with a ``package-lock.json``). npm severities in ``npm_critical_severities`` (critical, high) are
  critical, moderate is warning, low/info are info; every pip-audit vulnerability has severity
  ``pip_audit_severity`` (warning: pip-audit reports none). A tool that is missing, or cannot reach its
  vulnerability database, is an info/warning finding: never a silent "no vulnerabilities".
- **API key age**: upkeep's own keys (not revoked) and the rows of every ``key_tables`` entry
  (``{target: <databases target>, table: admin_keys, name_column: name, created_column: createdAt}``,
  read-only) older than ``key_max_age_days`` (90) are warnings: rotate them.
- **World-writable files** under ``world_writable_paths`` (symlinks not followed; sticky directories
  such as ``/tmp`` are not reported, files inside them are): warning each.
- **Listening ports** (``psutil.net_connections``, TCP LISTEN and bound UDP) not in ``allowed_ports``
  (the check is off while ``allowed_ports`` is null). Loopback-only listeners are ignored unless
  ``include_loopback``. Warning each.

Outcome: the worst finding. Findings: ``{severity, check, item, message, ...}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import psutil
from pydantic import Field

from upkeep.bounds import MAX_CALL_SECONDS, MAX_COUNT, MAX_DAYS
from upkeep.engine.context import CommandFailed, RunContext
from upkeep.engine.registry import HandlerConfig, handler, host_scoped, overridable
from upkeep.errors import ConfigError, UserError
from upkeep.handlers.audit.vulnerabilities import parse_npm_audit, parse_pip_audit
from upkeep.handlers.findings import finding as _f
from upkeep.handlers.findings import log_findings, outcome_of, severity_counts
from upkeep.handlers.health.probes.base import CERT_CRITICAL_DAYS, CERT_WARN_DAYS
from upkeep.handlers.health.probes.http import HttpClients, _read_not_after


class KeyTable(HandlerConfig):
    target: str = host_scoped(
        ..., refs=("databases",), also=("upkeep",), description="Database target (targets.databases name or URL)."
    )
    table: str = Field(..., description="Table holding the keys, optionally schema-qualified.")
    name_column: str = Field("name", description="Column naming the key.")
    created_column: str = Field("created_at", description="Column with the key's creation time.")


class SecurityAuditConfig(HandlerConfig):
    """What to audit and the thresholds of each check."""

    tls_hosts: list[str] = overridable(default_factory=list, description="host[:port] or https:// URLs.")
    tls_from_services: bool = Field(True, description="Also check https:// URLs of targets.services.")
    cert_warn_days: float = Field(
        CERT_WARN_DAYS, ge=0, le=MAX_DAYS, description="Warning when a certificate expires within."
    )
    cert_critical_days: float = Field(
        CERT_CRITICAL_DAYS, ge=0, le=MAX_DAYS, description="Critical when it expires within."
    )
    tls_timeout: float = Field(10.0, gt=0, le=MAX_CALL_SECONDS, description="Seconds for each TLS handshake.")
    python_projects: list[str] = host_scoped(default_factory=list, description="Requirements files or project dirs.")
    npm_projects: list[str] = host_scoped(default_factory=list, description="Directories with a package-lock.json.")
    pip_audit_command: list[str] = host_scoped(["pip-audit"], description="How to run pip-audit.")
    npm_command: list[str] = host_scoped(["npm"], description="How to run npm.")
    pip_audit_severity: str = Field(
        "warning", pattern="^(info|warning|critical)$", description="Severity of each pip-audit vulnerability."
    )
    npm_critical_severities: list[str] = Field(["critical", "high"], description="npm severities that are critical.")
    audit_timeout: float = Field(
        300, gt=0, le=MAX_CALL_SECONDS, description="Seconds each pip-audit / npm audit may take."
    )
    key_max_age_days: float = Field(90, gt=0, le=MAX_DAYS, description="API keys older than this are a warning.")
    check_upkeep_keys: bool = Field(True, description="Check upkeep's own API keys.")
    key_tables: list[KeyTable] = Field(default_factory=list, description="Application key tables to check.")
    world_writable_paths: list[str] = host_scoped(default_factory=list, description="Directories searched recursively.")
    max_files: int = Field(
        200_000, ge=1, le=MAX_COUNT, description="Stop the world-writable walk after this many entries."
    )
    allowed_ports: list[Annotated[int, Field(ge=1, le=65535)]] | None = Field(
        None, description="Listening ports allowed; null = port check off."
    )
    include_loopback: bool = Field(False, description="Also report listeners bound to loopback only.")


# --- TLS ------------------------------------------------------------------------------------------


def _host_port(entry: str) -> tuple[str, int]:
    if "://" in entry:
        parsed = urlsplit(entry)
        if not parsed.hostname:
            raise ConfigError(f"tls_hosts: {entry!r} has no host", field="tls_hosts")
        return parsed.hostname, parsed.port or 443
    if entry.count(":") != 1:  # a bare host name (or an IPv6 address without a port)
        return entry.strip("[]"), 443
    host, _, port = entry.rpartition(":")
    try:
        return host, int(port)
    except ValueError:
        raise ConfigError(f"tls_hosts: {entry!r}: port must be a number", field="tls_hosts") from None


async def _read_all(hosts: list[tuple[str, int]], timeout: float) -> list[datetime | BaseException | None]:
    clients = HttpClients()
    tasks = [_read_not_after(h, p, clients, timeout) for h, p in hosts]
    return await asyncio.gather(*tasks, return_exceptions=True)


def tls_findings(hosts: list[tuple[str, int]], now: datetime, config: SecurityAuditConfig) -> tuple[list, list]:
    """Findings and per-host rows for the certificate expiry of ``hosts``."""
    results = asyncio.run(_read_all(hosts, config.tls_timeout)) if hosts else []
    findings, rows = [], []
    for (host, port), result in zip(hosts, results, strict=True):
        item = f"{host}:{port}"
        if isinstance(result, BaseException) or result is None:
            reason = (str(result) or type(result).__name__) if isinstance(result, BaseException) else "no certificate"
            findings.append(_f("warning", "tls", item, f"{item}: cannot read the certificate ({reason})"))
            rows.append({"host": item, "error": reason})
            continue
        days = round((result - now).total_seconds() / 86400, 2)
        rows.append({"host": item, "not_after": result.isoformat(), "days_left": days})
        when = result.strftime("%Y-%m-%d")
        if days <= 0:
            findings.append(_f("critical", "tls", item, f"{item}: certificate expired on {when}", days_left=days))
        elif days <= config.cert_critical_days:
            findings.append(
                _f("critical", "tls", item, f"{item}: certificate expires in {days:.1f} days ({when})", days_left=days)
            )
        elif days <= config.cert_warn_days:
            findings.append(
                _f("warning", "tls", item, f"{item}: certificate expires in {days:.1f} days ({when})", days_left=days)
            )
    return findings, rows


# --- pip-audit / npm audit --------------------------------------------------------------------------


def _run_json(ctx: RunContext, argv: list[str], cwd: str | None, timeout: float) -> tuple[Any, str | None]:
    try:
        result = ctx.run_command(argv, cwd=cwd, check=False, timeout=timeout)
    except CommandFailed as exc:
        return None, str(exc)
    text = result.stdout.strip()
    start = min([i for i in (text.find("{"), text.find("[")) if i >= 0], default=-1)
    if start < 0:
        return None, f"{argv[0]} exited {result.returncode} without JSON: {result.tail(3)}"
    try:
        return json.loads(text[start:]), None
    except ValueError:
        return None, f"{argv[0]} printed invalid JSON (exit {result.returncode})"


def dependency_findings(ctx: RunContext, config: SecurityAuditConfig) -> tuple[list[dict], dict]:
    findings: list[dict] = []
    summary: dict[str, Any] = {}
    if config.python_projects:
        tool = shutil.which(config.pip_audit_command[0])
        if tool is None:
            findings.append(
                _f(
                    "info",
                    "pip_audit",
                    "pip-audit",
                    "pip-audit is not installed: Python dependencies were not audited (pip install pip-audit)",
                )
            )
        for project in config.python_projects if tool else []:
            ctx.check_cancelled()
            path = Path(project)
            argv = [*config.pip_audit_command, "-f", "json", "--progress-spinner", "off"]
            if path.is_file():
                argv += ["-r", str(path)]
            elif (path / "requirements.txt").is_file():
                argv += ["-r", str(path / "requirements.txt")]
            elif path.is_dir():
                argv += [str(path)]
            else:
                findings.append(_f("warning", "pip_audit", project, f"{project}: no such file or directory"))
                continue
            data, error = _run_json(ctx, argv, None, config.audit_timeout)
            if error:
                findings.append(_f("warning", "pip_audit", project, f"{project}: pip-audit failed: {error}"))
                continue
            found, counts = parse_pip_audit(data, config.pip_audit_severity, project)
            findings += found
            summary[f"pip:{project}"] = counts
    if config.npm_projects:
        tool = shutil.which(config.npm_command[0])
        if tool is None:
            findings.append(_f("info", "npm_audit", "npm", "npm is not installed: npm projects were not audited"))
        for project in config.npm_projects if tool else []:
            ctx.check_cancelled()
            if not (Path(project) / "package.json").is_file():
                findings.append(_f("warning", "npm_audit", project, f"{project}: no package.json"))
                continue
            data, error = _run_json(ctx, [*config.npm_command, "audit", "--json"], project, config.audit_timeout)
            if error or not isinstance(data, dict):
                findings.append(_f("warning", "npm_audit", project, f"{project}: npm audit failed: {error}"))
                continue
            found, counts = parse_npm_audit(data, project, config.npm_critical_severities)
            findings += found
            summary[f"npm:{project}"] = counts
    return findings, summary


# --- key age -------------------------------------------------------------------------------------------


def _age_days(created: Any, now: datetime) -> float | None:
    if created is None:
        return None
    if isinstance(created, str):
        created = datetime.fromisoformat(created.replace("Z", "+00:00"))
    if created.tzinfo is None:  # a naive column: read as UTC
        from datetime import UTC

        created = created.replace(tzinfo=UTC)
    return (now - created).total_seconds() / 86400


def key_findings(ctx: RunContext, config: SecurityAuditConfig, now: datetime) -> tuple[list[dict], list[dict]]:
    findings: list[dict] = []
    rows: list[dict] = []
    keys: list[tuple[str, str, Any]] = []
    if config.check_upkeep_keys and ctx.services is not None and hasattr(ctx.services, "api_keys"):
        keys += [("upkeep", k["name"], k["created_at"]) for k in ctx.services.api_keys() if not k.get("revoked_at")]
    for table in config.key_tables:
        keys += [(f"{table.target}/{table.table}", name, created) for name, created in _table_keys(ctx, table)]
    for source, name, created in keys:
        age = _age_days(created, now)
        rows.append({"source": source, "name": name, "age_days": None if age is None else round(age, 1)})
        if age is not None and age > config.key_max_age_days:
            findings.append(
                _f(
                    "warning",
                    "key_age",
                    f"{source}:{name}",
                    f"API key {name!r} ({source}) is {age:.0f} days old (over {config.key_max_age_days:g}): rotate it",
                    age_days=round(age, 1),
                )
            )
    return findings, rows


def _table_keys(ctx: RunContext, table: KeyTable) -> list[tuple[str, Any]]:
    from psycopg import sql

    from upkeep.handlers.db.postgres import connect
    from upkeep.handlers.db.targets import target_from_ctx

    target = target_from_ctx(ctx, table.target)
    parts = table.table.split(".")
    query = sql.SQL("SELECT {}::text, {} FROM {}").format(
        sql.Identifier(table.name_column), sql.Identifier(table.created_column), sql.Identifier(*parts)
    )
    with connect(target) as conn:
        conn.read_only = True
        try:
            return [(r[0], r[1]) for r in conn.execute(query).fetchall()]
        except Exception as exc:  # psycopg.Error: name the table and the fix, not a traceback
            raise UserError(
                f"cannot read keys from {table.table} on {table.target}: {str(exc).strip().splitlines()[0]}",
                hint="check key_tables (table and columns)",
            ) from None


# --- files and ports ----------------------------------------------------------------------------------------


def world_writable(paths: list[str], max_entries: int) -> tuple[list[dict], int]:
    findings: list[dict] = []
    seen = 0
    for root in paths:
        if not os.path.exists(root):
            findings.append(_f("warning", "world_writable", root, f"{root}: no such directory"))
            continue
        stack = [root]
        while stack and seen < max_entries:
            current = stack.pop()
            try:
                entries = list(os.scandir(current))
            except OSError:
                continue
            for entry in entries:
                seen += 1
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISLNK(st.st_mode):
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                if is_dir:
                    stack.append(entry.path)
                if st.st_mode & stat.S_IWOTH and not (is_dir and st.st_mode & stat.S_ISVTX):
                    kind = "directory" if is_dir else "file"
                    findings.append(
                        _f(
                            "warning",
                            "world_writable",
                            entry.path,
                            f"{entry.path}: world-writable {kind} (mode {stat.S_IMODE(st.st_mode):04o}); chmod o-w it",
                            mode=f"{stat.S_IMODE(st.st_mode):04o}",
                        )
                    )
        if seen >= max_entries:
            findings.append(_f("info", "world_writable", root, f"stopped after {max_entries} entries (max_files)"))
            break
    return findings, seen


def _is_loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip == "::1"


def listening_ports(include_loopback: bool) -> list[dict]:
    out: dict[tuple, dict] = {}
    for conn in psutil.net_connections(kind="inet"):
        is_tcp = conn.type == 1  # socket.SOCK_STREAM
        if is_tcp and conn.status != psutil.CONN_LISTEN:
            continue
        if not is_tcp and conn.raddr:
            continue
        if not conn.laddr:
            continue
        ip, port = conn.laddr.ip, conn.laddr.port
        if _is_loopback(ip) and not include_loopback:
            continue
        key = ("tcp" if is_tcp else "udp", port, ip)
        name = None
        if conn.pid:
            try:
                name = psutil.Process(conn.pid).name()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                name = None
        out[key] = {"protocol": key[0], "port": port, "address": ip, "pid": conn.pid, "process": name}
    return sorted(out.values(), key=lambda r: (r["port"], r["protocol"], r["address"]))


def port_findings(config: SecurityAuditConfig) -> tuple[list[dict], list[dict]]:
    try:
        ports = listening_ports(config.include_loopback)
    except psutil.AccessDenied:
        return [_f("info", "ports", "ports", "listening ports cannot be listed without more privileges")], []
    allowed = set(config.allowed_ports or [])
    findings = []
    for p in ports:
        if p["port"] not in allowed:
            who = f" by {p['process']} (pid {p['pid']})" if p["process"] else ""
            findings.append(
                _f(
                    "warning",
                    "ports",
                    f"{p['protocol']}/{p['port']}",
                    f"{p['protocol']} port {p['port']} is open on {p['address']}{who} and not in allowed_ports",
                    **p,
                )
            )
    return findings, ports


# --- the handler --------------------------------------------------------------------------------------------


def _tls_targets(ctx: RunContext, config: SecurityAuditConfig) -> list[tuple[str, int]]:
    entries = list(config.tls_hosts)
    if config.tls_from_services:
        for name in ctx.targets.names("services"):
            spec = ctx.targets.get("services", name)
            url = spec.get("url") if isinstance(spec, dict) else None
            if isinstance(url, str) and url.lower().startswith("https://"):
                entries.append(url)
    hosts: list[tuple[str, int]] = []
    for entry in entries:
        hp = _host_port(entry)
        if hp not in hosts:
            hosts.append(hp)
    return hosts


@handler("security.audit", config=SecurityAuditConfig, aliases=["audit.security"])
def security_audit(ctx: RunContext, config: SecurityAuditConfig) -> dict:
    """TLS expiry, dependency vulnerabilities, API key age, world-writable files and unexpected open ports."""
    now = ctx.now()
    findings: list[dict] = []
    result: dict[str, Any] = {}
    ctx.progress(0.0, "TLS certificates")
    tls, result["certificates"] = tls_findings(_tls_targets(ctx, config), now, config)
    findings += tls
    ctx.check_cancelled()
    ctx.progress(0.2, "dependency vulnerabilities")
    deps, result["dependencies"] = dependency_findings(ctx, config)
    findings += deps
    ctx.progress(0.6, "API keys")
    keys, result["keys"] = key_findings(ctx, config, now)
    findings += keys
    ctx.check_cancelled()
    if config.world_writable_paths:
        ctx.progress(0.7, "world-writable files")
        ww, result["files_scanned"] = world_writable(config.world_writable_paths, config.max_files)
        findings += ww
    if config.allowed_ports is not None:
        ctx.progress(0.9, "listening ports")
        ports, result["listening"] = port_findings(config)
        findings += ports
    log_findings(ctx, findings, "item")
    counts = severity_counts(findings)
    by_check: dict[str, int] = {}
    for f in findings:
        if f["severity"] != "info":
            by_check[f["check"]] = by_check.get(f["check"], 0) + 1
    detail = ", ".join(f"{k} {v}" for k, v in sorted(by_check.items())) or "nothing found"
    summary = f"{counts['critical']} critical, {counts['warning']} warning ({detail})"
    return {"outcome": outcome_of(findings), "summary": summary, "findings": findings, "counts": counts, **result}

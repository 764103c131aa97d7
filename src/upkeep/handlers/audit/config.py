"""``config.audit``: audit ``.env``-style files and upkeep's own config, never executing anything.

The originals ran ``source .env`` (executing every ``$(...)`` in it) and ``grep CHANGE_ME_ .env``.
Here each file is read by a small parser (:func:`parse_env_text`) that understands what dotenv and
docker compose accept: ``KEY=value``, ``export KEY=value``, ``'single'`` (literal) and ``"double"``
quoted values (escapes, may span lines), ``#`` comments (a ``#`` in an unquoted value starts a comment
only after whitespace). Nothing is expanded or executed: a ``$(...)`` or backtick in a value that a
shell would run is reported as a ``command_substitution`` finding, a line that is no assignment
(a shell would run it as a command) as ``not_assignment``.

Findings name the file, line and key, **never the value**:

=====================  ========  ===========================================================
check                  severity  when
=====================  ========  ===========================================================
placeholder            warning   value matches a ``placeholder_patterns`` regex (``CHANGE_ME``,
                                 ``changeme``, ``TODO``, ``FIXME``, ``<...>``, ``your-...``)
empty_required         critical  a required key is present with an empty value
missing_required       critical  a required key (``required_keys``, or a key of the example
                                 file) is absent
short_secret           warning   a key named like ``secret_key_patterns`` (``*_KEY``,
                                 ``*_SECRET``, ``*_PASSWORD``, ``*_TOKEN``) has a value shorter
                                 than ``min_secret_length`` (32)
empty_secret           warning   such a key is present but empty
duplicate_key          warning   a key is assigned twice (the later line wins in dotenv)
command_substitution   critical  ``$(...)`` or a backtick in an unquoted/double-quoted value
not_assignment         warning   a line that is no ``KEY=value`` (a shell would execute it)
syntax                 warning   an unterminated quote or text after a closing quote
permissions            warning   the file is readable or writable by group or others
tracked_by_git         critical  ``git ls-files`` says the file is in a repository's index
missing_file           warning   a configured path that does not exist
upkeep_config          critical  upkeep.yaml does not load or a task in it is invalid
plain_secret           warning   upkeep.yaml holds a plain-text secret instead of ``${env:NAME}``
=====================  ========  ===========================================================

Inventory (optional), ``targets.env_files``::

    env_files:
      app: {path: /srv/app/.env, required_keys: [DATABASE_URL, SECRET_KEY], example: /srv/app/.env.example}

Task config ``paths`` (globs) are audited with the task-level ``required_keys``. With ``example``
(per target) or ``use_example_files`` (a sibling ``<file>.example``), every key of the example file
must be present. Outcome: the worst finding severity.
"""

from __future__ import annotations

import glob
import os
import re
import stat
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from upkeep.engine.context import CommandFailed, RunContext
from upkeep.engine.registry import HandlerConfig, handler, host_scoped, inventory_kind
from upkeep.errors import ConfigError
from upkeep.handlers.audit.envfile import EnvEntry, EnvFile, parse_env_text
from upkeep.handlers.findings import RANK, log_findings, outcome_of, severity_counts

DEFAULT_PLACEHOLDERS = [r"CHANGE_?ME", r"\bTODO\b", r"\bFIXME\b", r"^<[^>]*>$", r"^(your|replace)[-_ ]", r"^x{4,}$"]
DEFAULT_SECRET_PATTERNS = ["*_KEY", "*_SECRET", "*_PASSWORD", "*_TOKEN"]


class EnvFileTarget(BaseModel):
    """A ``targets.env_files`` entry."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Glob pattern of the .env-style files.")
    required_keys: list[str] = Field(default_factory=list, description="Keys every such file must define.")
    example: str | None = Field(None, description="An example file whose keys are required too.")


inventory_kind("env_files", EnvFileTarget)


class ConfigAuditConfig(HandlerConfig):
    """Which files to audit and the rules they are held to."""

    paths: list[str] = host_scoped(
        default_factory=list,
        refs=("env_files",),
        overridable=True,
        description="Glob patterns of .env-style files to audit, or names of targets.env_files entries.",
    )
    targets: list[str] = Field(
        default_factory=list, description="Names under targets.env_files; empty = every env_files target."
    )
    required_keys: list[str] = Field(default_factory=list, description="Keys every file in `paths` must define.")
    placeholder_patterns: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PLACEHOLDERS),
        description="Regexes (case-insensitive) that mark a value as a placeholder.",
    )
    secret_key_patterns: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SECRET_PATTERNS),
        description="Glob patterns (case-insensitive) of keys that hold secrets.",
    )
    min_secret_length: int = Field(
        32, ge=0, le=4096, description="Secrets shorter than this are a short_secret finding."
    )
    use_example_files: bool = Field(
        True, description="When <file>.example exists next to a file, its keys are required too."
    )
    check_permissions: bool = Field(True, description="Report files readable or writable by group or others.")
    check_git: bool = Field(True, description="Report files tracked by git (needs the git binary; skipped without).")
    validate_upkeep_config: bool = Field(True, description="Also load and validate upkeep's own upkeep.yaml.")
    upkeep_config: str | None = host_scoped(None, description="Path of upkeep.yaml (default: the running upkeep's).")


# --- checks -------------------------------------------------------------------------------------


@dataclass
class _Rules:
    placeholders: list[re.Pattern]
    secret_patterns: list[str]
    min_secret_length: int

    def is_secret(self, key: str) -> bool:
        upper = key.upper()
        return any(fnmatchcase(upper, p.upper()) for p in self.secret_patterns)

    def is_placeholder(self, value: str) -> bool:
        return any(p.search(value) for p in self.placeholders)


def _finding(severity: str, check: str, path: Path, line: int | None, key: str | None, message: str) -> dict:
    where = f"{path}:{line}" if line else str(path)
    text = f"{where}: {key + ': ' if key else ''}{message}"
    return {"severity": severity, "check": check, "file": str(path), "line": line, "key": key, "message": text}


def audit_env_file(path: Path, required: list[str], rules: _Rules) -> tuple[list[dict], int]:
    """Findings for one file (content checks only) and the number of keys it defines."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return [_finding("warning", "unreadable", path, None, None, f"cannot read: {exc.strerror}")], 0
    parsed = parse_env_text(text)
    out = [
        _finding(
            "critical" if p.check == "command_substitution" else "warning", p.check, path, p.line, p.key, p.message
        )
        for p in parsed.problems
    ]
    first: dict[str, EnvEntry] = {}
    for entry in parsed.entries:
        if entry.key in first:
            out.append(
                _finding(
                    "warning",
                    "duplicate_key",
                    path,
                    entry.line,
                    entry.key,
                    f"defined again (first on line {first[entry.key].line}; the later one wins)",
                )
            )
        else:
            first[entry.key] = entry
        if entry.substitution:
            out.append(
                _finding(
                    "critical",
                    "command_substitution",
                    path,
                    entry.line,
                    entry.key,
                    "value contains a command substitution ($(...) or backticks) that a shell "
                    "sourcing this file would execute; upkeep never does",
                )
            )
        value = entry.value
        if entry.key in required and value == "":
            out.append(_finding("critical", "empty_required", path, entry.line, entry.key, "required key is empty"))
            continue
        if value and rules.is_placeholder(value):
            out.append(
                _finding(
                    "warning",
                    "placeholder",
                    path,
                    entry.line,
                    entry.key,
                    "value is a placeholder (replace it with the real value)",
                )
            )
            continue
        if rules.is_secret(entry.key):
            if value == "":
                out.append(_finding("warning", "empty_secret", path, entry.line, entry.key, "secret is empty"))
            elif len(value) < rules.min_secret_length and not re.fullmatch(r"\$\{[^}]+\}", value):
                out.append(
                    _finding(
                        "warning",
                        "short_secret",
                        path,
                        entry.line,
                        entry.key,
                        f"secret is {len(value)} characters, shorter than {rules.min_secret_length}",
                    )
                )
    for key in required:
        if key not in first:
            out.append(_finding("critical", "missing_required", path, None, key, "required key is missing"))
    return out, len(first)


def permission_findings(path: Path) -> list[dict]:
    try:
        mode = path.stat().st_mode
    except OSError:
        return []
    loose = []
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        loose.append("readable")
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        loose.append("writable")
    if not loose:
        return []
    return [
        _finding(
            "warning",
            "permissions",
            path,
            None,
            None,
            f"{' and '.join(loose)} by group or others (mode {stat.S_IMODE(mode):04o}); chmod 600 it",
        )
    ]


def git_findings(ctx: RunContext, path: Path) -> list[dict] | None:
    """A finding when git tracks ``path``; None when git is not installed."""
    try:
        result = ctx.run_command(
            ["git", "-C", str(path.parent), "ls-files", "--error-unmatch", "--", path.name], check=False, timeout=30
        )
    except CommandFailed:
        return None
    if result.returncode == 0:
        return [
            _finding(
                "critical",
                "tracked_by_git",
                path,
                None,
                None,
                "tracked by git: its secrets are in the repository history (git rm --cached it, add it "
                "to .gitignore and rotate the secrets)",
            )
        ]
    return []


def _expand(pattern: str) -> list[Path]:
    pattern = os.path.expanduser(pattern)
    if glob.has_magic(pattern):
        return [Path(p) for p in sorted(glob.glob(pattern, include_hidden=True)) if os.path.isfile(p)]
    return [Path(pattern)]


def _example_keys(example: Path) -> list[str]:
    try:
        return sorted(parse_env_text(example.read_text(encoding="utf-8", errors="replace")).keys())
    except OSError:
        return []


def _jobs(ctx: RunContext, config: ConfigAuditConfig) -> list[tuple[str, str, list[str], str | None]]:
    """(target name, pattern, required keys, example path) for every file source."""
    jobs = []
    inventory = ctx.targets.names("env_files")
    names = config.targets or ([] if config.paths else inventory)
    names = [*names, *(p for p in config.paths if p in inventory)]
    for name in names:
        entry = ctx.targets.get("env_files", name)
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, dict) or not entry.get("path"):
            raise ConfigError(f"env_files target {name!r} has no path", hint=f"set targets.env_files.{name}.path")
        jobs.append((name, str(entry["path"]), list(entry.get("required_keys") or []), entry.get("example")))
    for pattern in config.paths:
        if pattern not in inventory:
            jobs.append(("paths", pattern, list(config.required_keys), None))
    why = (
        "targets and paths in the task's config" if config.targets or config.paths else "every targets.env_files entry"
    )
    ctx.scope([f"{name}: {pattern}" for name, pattern, _, _ in jobs], why, what="env files")
    return jobs


def _upkeep_config_findings(ctx: RunContext, config: ConfigAuditConfig) -> tuple[list[dict], str | None]:
    services = ctx.services
    if services is None or not hasattr(services, "validate_config_file"):
        return [], None
    path = config.upkeep_config
    if path is None:
        path = services.config_file
    if path is None or not Path(path).exists():
        return [], None
    out = []
    for problem in services.validate_config_file(path):
        out.append(
            {
                "severity": problem["severity"],
                "check": problem["check"],
                "file": str(path),
                "line": problem.get("line"),
                "key": problem.get("key"),
                "message": problem["message"],
            }
        )
    return out, str(path)


@handler("config.audit", config=ConfigAuditConfig, aliases=["config.check", "env.audit"])
def config_audit(ctx: RunContext, config: ConfigAuditConfig) -> dict:
    """Audit .env files (placeholders, missing/short/duplicate keys, permissions, git) and upkeep.yaml."""
    try:
        placeholders = [re.compile(p, re.I) for p in config.placeholder_patterns]
    except re.error as exc:
        raise ConfigError(f"placeholder_patterns: invalid regex: {exc}", field="placeholder_patterns") from None
    rules = _Rules(placeholders, config.secret_key_patterns, config.min_secret_length)
    jobs = _jobs(ctx, config)
    findings: list[dict] = []
    files: list[dict] = []
    git_available = config.check_git
    seen: set[str] = set()
    for n, (name, pattern, required, example) in enumerate(jobs):
        ctx.check_cancelled()
        ctx.progress(n / max(1, len(jobs)), f"audit {pattern}")
        paths = _expand(pattern)
        if not paths or (len(paths) == 1 and not paths[0].exists()):
            findings.append(_finding("warning", "missing_file", Path(pattern), None, None, "no such file"))
            continue
        for path in paths:
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            wanted = list(required)
            example_path = Path(example) if example else Path(str(path) + ".example")
            if (example or config.use_example_files) and example_path.is_file() and example_path != path:
                wanted += [k for k in _example_keys(example_path) if k not in wanted]
            file_findings, key_count = audit_env_file(path, wanted, rules)
            if config.check_permissions:
                file_findings += permission_findings(path)
            if git_available:
                tracked = git_findings(ctx, path)
                if tracked is None:
                    git_available = False
                    findings.append(
                        {
                            "severity": "info",
                            "check": "git",
                            "file": None,
                            "line": None,
                            "key": None,
                            "message": "git is not installed: tracked .env files were not checked",
                        }
                    )
                else:
                    file_findings += tracked
            findings.extend(file_findings)
            files.append({"target": name, "path": str(path), "keys": key_count, "findings": len(file_findings)})
    upkeep_findings, upkeep_path = ([], None)
    if config.validate_upkeep_config:
        upkeep_findings, upkeep_path = _upkeep_config_findings(ctx, config)
        findings.extend(upkeep_findings)
    if not jobs and upkeep_path is None:
        raise ConfigError(
            "config.audit has nothing to audit",
            hint="set paths (globs of .env files) or define targets.env_files in upkeep.yaml",
        )
    log_findings(ctx, findings, "file", "line", "key")
    counts = severity_counts(findings)
    summary = (
        f"{len(files)} file(s) audited{' + upkeep.yaml' if upkeep_path else ''}: "
        f"{counts['critical']} critical, {counts['warning']} warning"
    )
    if findings:
        top = sorted(findings, key=lambda f: -RANK[f["severity"]])[0]
        summary += f" ({top['message']})"
    return {
        "outcome": outcome_of(findings),
        "summary": summary,
        "findings": findings,
        "files": files,
        "upkeep_config": upkeep_path,
        "counts": counts,
    }


__all__ = ["ConfigAuditConfig", "EnvEntry", "EnvFile", "audit_env_file", "config_audit", "parse_env_text"]

"""``deps.check``: outdated packages, split into patch / minor / major. Report only: never upgrades.

Sources (each only when configured and its tool is present):

- ``python``: Python interpreters (of virtualenvs) whose packages are listed with
  ``<python> -m pip list --outdated --format json``;
- ``npm_projects``: directories where ``npm outdated --json`` runs (it exits 1 when something is
  outdated; that is not a failure);
- ``apt``: ``apt list --upgradable`` (``auto``: when ``apt`` is installed). Packages from a
  ``*-security`` suite are marked ``security``.

Versions are compared with ``packaging.version`` (PEP 440, which also reads npm's semver strings):
a different first release component is **major**, a different second is **minor**, anything else
**patch**. Debian versions (``1:2.6.1-3+deb12u1``) are compared on their upstream part (epoch and
Debian revision stripped); the same upstream version with a new revision counts as patch. Versions
that cannot be compared are ``unknown``.

Outcome: ``ok``, or ``warning`` when an update of a level in ``warn_on`` (default none) exists or
when ``security_outcome`` (warning) applies to pending apt security updates. A tool that fails is a
warning finding.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from upkeep.bounds import MAX_CALL_SECONDS
from upkeep.engine.context import CommandFailed, RunContext
from upkeep.engine.registry import HandlerConfig, handler, host_scoped
from upkeep.errors import ConfigError
from upkeep.handlers.findings import outcome_of, worst_of

LEVELS = ("major", "minor", "patch", "unknown")
APT_RE = re.compile(
    r"^(?P<name>[^/\s]+)/(?P<suite>\S+)\s+(?P<new>\S+)\s+(?P<arch>\S+)\s+\[upgradable from: (?P<old>[^\]]+)\]"
)
DEB_UPSTREAM_RE = re.compile(r"^(?:\d+:)?(?P<upstream>.+?)(?:-[^-]*)?$")
NUMERIC_RE = re.compile(r"\d+")


class DepsCheckConfig(HandlerConfig):
    """Where to look for outdated packages and which levels warn."""

    python: list[str] = host_scoped(
        default_factory=list, description="Python interpreters (of venvs) to list with pip."
    )
    npm_projects: list[str] = host_scoped(default_factory=list, description="Directories to run `npm outdated` in.")
    npm_command: list[str] = host_scoped(["npm"], description="How to run npm.")
    apt: Literal["auto", "on", "off"] = Field("auto", description="apt list --upgradable: auto = when installed.")
    warn_on: list[Literal["major", "minor", "patch", "unknown"]] = Field(
        default_factory=list, description="Update levels that make the outcome warning (report only otherwise)."
    )
    security_outcome: Literal["ok", "warning", "critical"] = Field(
        "warning", description="Outcome when apt has pending security updates."
    )
    timeout: float = Field(300, gt=0, le=MAX_CALL_SECONDS, description="Seconds each listing command may take.")


def _release(version: str) -> tuple[int, ...] | None:
    from packaging.version import InvalidVersion, Version  # on use: loading the handlers must not load it

    try:
        return Version(version).release
    except InvalidVersion:
        pass
    match = DEB_UPSTREAM_RE.match(version.strip())
    upstream = match.group("upstream") if match else version
    head = re.match(r"[\d.]+", upstream.split("+")[0].split("~")[0])
    if not head:
        return None
    return tuple(int(n) for n in NUMERIC_RE.findall(head.group(0)))


def classify(current: str, latest: str) -> str:
    """``major`` / ``minor`` / ``patch`` / ``unknown`` for an update from ``current`` to ``latest``."""
    old, new = _release(current), _release(latest)
    if not old or not new:
        return "unknown"
    width = max(len(old), len(new), 3)
    old = old + (0,) * (width - len(old))
    new = new + (0,) * (width - len(new))
    if new[0] != old[0]:
        return "major"
    if new[1] != old[1]:
        return "minor"
    return "patch"


def _row(source: str, name: str, current: str, latest: str, **extra: Any) -> dict[str, Any]:
    return {
        "source": source,
        "name": name,
        "current": current,
        "latest": latest,
        "level": classify(current, latest),
        **extra,
    }


def parse_pip_outdated(data: list[dict], source: str = "pip") -> list[dict]:
    return [_row(source, d["name"], d["version"], d["latest_version"]) for d in data]


def parse_npm_outdated(data: dict, source: str = "npm") -> list[dict]:
    rows = []
    for name, info in sorted(data.items()):
        if isinstance(info, list):  # the same package in several places
            info = info[0]
        current = info.get("current")
        if not current:  # declared but not installed: nothing to compare
            continue
        rows.append(
            _row(source, name, current, info.get("latest") or info.get("wanted") or current, wanted=info.get("wanted"))
        )
    return rows


def parse_apt_upgradable(text: str) -> list[dict]:
    rows = []
    for line in text.splitlines():
        match = APT_RE.match(line.strip())
        if match:
            suite = match.group("suite")
            rows.append(
                _row(
                    "apt",
                    match.group("name"),
                    match.group("old"),
                    match.group("new"),
                    suite=suite,
                    security="-security" in suite or suite.endswith("/updates"),
                )
            )
    return rows


def _run(ctx: RunContext, argv: list[str], cwd: str | None, timeout: float) -> tuple[str | None, str | None]:
    try:
        result = ctx.run_command(argv, cwd=cwd, check=False, timeout=timeout)
    except CommandFailed as exc:
        return None, str(exc)
    if result.returncode not in (0, 1) or (result.returncode == 1 and not result.stdout.strip()):
        return None, f"{' '.join(argv[:4])} exited {result.returncode}: {result.tail(3)}"
    return result.stdout, None


def _json(text: str) -> Any:
    start = min([i for i in (text.find("{"), text.find("[")) if i >= 0], default=-1)
    return json.loads(text[start:]) if start >= 0 else None


@handler("deps.check", config=DepsCheckConfig, aliases=["dependencies.check", "packages.outdated"])
def deps_check(ctx: RunContext, config: DepsCheckConfig) -> dict:
    """Outdated pip, npm and apt packages split into patch/minor/major; never upgrades anything."""
    packages: list[dict] = []
    findings: list[dict] = []
    checked: list[str] = []

    def failed(source: str, message: str) -> None:
        findings.append({"severity": "warning", "check": "tool", "item": source, "message": message})

    for python in config.python:
        ctx.check_cancelled()
        if shutil.which(python) is None and not Path(python).is_file():
            failed(python, f"{python}: no such interpreter")
            continue
        out, error = _run(ctx, [python, "-m", "pip", "list", "--outdated", "--format", "json"], None, config.timeout)
        if error:
            failed(python, f"pip list --outdated failed for {python}: {error}")
            continue
        try:
            packages += parse_pip_outdated(_json(out or "[]") or [], f"pip:{python}")
        except (ValueError, KeyError, TypeError):
            failed(python, f"pip list --outdated for {python} printed something that is not its JSON")
            continue
        checked.append(f"pip:{python}")
    if config.npm_projects and shutil.which(config.npm_command[0]) is None:
        failed("npm", "npm is not installed: npm projects were not checked")
    elif config.npm_projects:
        for project in config.npm_projects:
            ctx.check_cancelled()
            if not (Path(project) / "package.json").is_file():
                failed(project, f"{project}: no package.json")
                continue
            out, error = _run(ctx, [*config.npm_command, "outdated", "--json"], project, config.timeout)
            if error:
                failed(project, f"npm outdated failed in {project}: {error}")
                continue
            try:
                packages += parse_npm_outdated(_json(out or "{}") or {}, f"npm:{project}")
            except (ValueError, AttributeError):
                failed(project, f"npm outdated in {project} printed something that is not its JSON")
                continue
            checked.append(f"npm:{project}")
    if config.apt == "on" or (config.apt == "auto" and shutil.which("apt")):
        if shutil.which("apt") is None:
            raise ConfigError("apt: on, but apt is not installed", hint="set apt: auto or off", field="apt")
        out, error = _run(ctx, ["apt", "list", "--upgradable"], None, config.timeout)
        if error:
            failed("apt", f"apt list --upgradable failed: {error}")
        else:
            packages += parse_apt_upgradable(out or "")
            checked.append("apt")
    by_level = {level: sum(1 for p in packages if p["level"] == level) for level in LEVELS}
    outcome = "ok"
    for level in config.warn_on:
        if by_level[level]:
            outcome = "warning"
            findings.append(
                {
                    "severity": "warning",
                    "check": "outdated",
                    "item": level,
                    "message": f"{by_level[level]} {level} update(s) available",
                }
            )
    security = [p for p in packages if p.get("security")]
    if security and config.security_outcome != "ok":
        findings.append(
            {
                "severity": config.security_outcome,
                "check": "security_updates",
                "item": "apt",
                "message": f"{len(security)} apt security update(s) pending: "
                + ", ".join(p["name"] for p in security[:10]),
            }
        )
    outcome = worst_of([outcome, outcome_of(findings)])
    for p in packages:
        ctx.debug("outdated", f"{p['source']}: {p['name']} {p['current']} -> {p['latest']} ({p['level']})", package=p)
    summary = (
        f"{len(packages)} outdated ({by_level['major']} major, {by_level['minor']} minor, "
        f"{by_level['patch']} patch) in {', '.join(checked) or 'nothing checked'}"
    )
    if security:
        summary += f"; {len(security)} security"
    return {
        "outcome": outcome,
        "summary": summary,
        "packages": packages,
        "by_level": by_level,
        "checked": checked,
        "findings": findings,
        "note": "report only: upgrade with your package manager after review",
    }

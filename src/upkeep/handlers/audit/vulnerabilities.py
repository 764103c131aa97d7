"""Reading the reports of ``pip-audit -f json`` and ``npm audit --json`` into findings, for
``security.audit`` (which runs the tools, see ``security``)."""

from __future__ import annotations

from typing import Any

from upkeep.handlers.findings import finding as _f


def parse_pip_audit(data: Any, severity: str = "warning", project: str = "") -> tuple[list[dict], dict]:
    """Findings from ``pip-audit -f json`` output (current ``{"dependencies": [...]}`` or legacy list)."""
    deps = data.get("dependencies", []) if isinstance(data, dict) else data if isinstance(data, list) else []
    findings = []
    skipped = []
    count = 0
    for dep in deps:
        name = dep.get("name", "?")
        if dep.get("skip_reason"):
            skipped.append(name)
            continue
        for vuln in dep.get("vulns") or []:
            count += 1
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version"
            aliases = [a for a in vuln.get("aliases") or [] if a.startswith("CVE-")]
            ident = vuln.get("id", "?") + (f" ({', '.join(aliases)})" if aliases else "")
            findings.append(
                _f(
                    severity,
                    "pip_audit",
                    f"{name} {dep.get('version', '')}".strip(),
                    f"{project + ': ' if project else ''}{name} {dep.get('version', '')} has {ident}; fixed in {fixes}",
                    id=vuln.get("id"),
                    package=name,
                    version=dep.get("version"),
                    fix_versions=vuln.get("fix_versions") or [],
                    aliases=vuln.get("aliases") or [],
                )
            )
    if skipped:
        findings.append(
            _f(
                "warning",
                "pip_audit",
                project or "pip-audit",
                f"{project + ': ' if project else ''}pip-audit could not audit {len(skipped)} "
                f"package(s): {', '.join(skipped[:10])} (vulnerability service unreachable or "
                "packages not on PyPI)",
                skipped=skipped,
            )
        )
    return findings, {"dependencies": len(deps), "vulnerabilities": count, "skipped": len(skipped)}


def parse_npm_audit(data: dict, project: str = "", critical: list[str] | None = None) -> tuple[list[dict], dict]:
    """Findings from ``npm audit --json`` (npm 7+, ``auditReportVersion: 2``); an npm error document too."""
    critical = [s.lower() for s in (critical or ["critical", "high"])]
    prefix = f"{project}: " if project else ""
    if "vulnerabilities" not in data:
        reason = data.get("message") or (data.get("error") or {}).get("summary") or "no vulnerability report"
        return [_f("warning", "npm_audit", project or "npm", f"{prefix}npm audit failed: {reason}")], {}
    findings = []
    for name, vuln in sorted(data["vulnerabilities"].items()):
        level = str(vuln.get("severity", "low")).lower()
        if level in critical:
            severity = "critical"
        else:
            severity = "warning" if level in ("critical", "high", "moderate") else "info"
        advisories = [v for v in vuln.get("via") or [] if isinstance(v, dict)]
        via_names = [v for v in vuln.get("via") or [] if isinstance(v, str)]
        titles = "; ".join(f"{a.get('title')} ({a.get('url', '').rsplit('/', 1)[-1]})" for a in advisories[:3])
        if not titles and via_names:
            titles = f"through {', '.join(via_names)}"
        fix = vuln.get("fixAvailable")
        fix_text = (
            "fix available"
            if fix is True
            else f"fix: {fix.get('name')}@{fix.get('version')}{' (major)' if fix.get('isSemVerMajor') else ''}"
            if isinstance(fix, dict)
            else "no fix available"
        )
        findings.append(
            _f(
                severity,
                "npm_audit",
                name,
                f"{prefix}{name} {vuln.get('range', '')} ({level}): {titles}; {fix_text}",
                package=name,
                npm_severity=level,
                direct=vuln.get("isDirect"),
                advisories=[a.get("url") for a in advisories],
            )
        )
    counts = (data.get("metadata") or {}).get("vulnerabilities") or {}
    return findings, counts

"""deps.check: outdated packages from recorded pip/npm/apt outputs, split patch/minor/major; never upgrades."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from support.contexts import run_handler
from upkeep.handlers.audit.deps import classify, parse_apt_upgradable, parse_npm_outdated, parse_pip_outdated

FIXTURES = Path(__file__).parent.parent / "fixtures" / "audit"


@pytest.mark.parametrize(
    ("current", "latest", "level"),
    [
        ("1.2.0", "1.2.8", "patch"),
        ("4.17.15", "4.18.1", "minor"),
        ("21.0", "26.3", "major"),
        ("3.4", "3.20", "minor"),
        ("2.6.1", "2.6.2", "patch"),
        ("12.4+deb12u11", "12.4+deb12u15", "patch"),
        ("5.2.15-2+b8", "5.2.15-2+b13", "patch"),
        ("20230311+deb12u1", "20250419~deb12u2", "major"),
        ("1:2.6.1-3", "1:2.7.0-1", "minor"),
        ("2.0.0rc1", "2.0.0", "patch"),
        ("abc", "def", "unknown"),
    ],
)
def test_updates_are_classified(current, latest, level):
    assert classify(current, latest) == level


def test_recorded_pip_outdated_output_is_split_by_level():
    rows = parse_pip_outdated(json.loads((FIXTURES / "pip-list-outdated.json").read_text()))
    levels = {r["name"]: r["level"] for r in rows}
    assert levels == {"idna": "minor", "packaging": "major", "pip": "major", "setuptools": "major", "six": "minor"}


def test_recorded_npm_outdated_output_is_split_by_level():
    rows = parse_npm_outdated(json.loads((FIXTURES / "npm-outdated.json").read_text()))
    assert {(r["name"], r["current"], r["latest"], r["level"]) for r in rows} == {
        ("lodash", "4.17.15", "4.18.1", "minor"),
        ("minimist", "1.2.0", "1.2.8", "patch"),
    }


def test_recorded_apt_output_marks_security_updates():
    rows = parse_apt_upgradable((FIXTURES / "apt-list-upgradable.txt").read_text())
    assert len(rows) == 11  # the "Listing..." header is not a package
    apt = next(r for r in rows if r["name"] == "apt")
    assert (apt["current"], apt["latest"], apt["level"], apt["security"]) == ("2.6.1", "2.6.2", "patch", True)
    assert not next(r for r in rows if r["name"] == "bash")["security"]


def _replay(tmp_path: Path, name: str, fixture: str, exit_code: int) -> str:
    """A stand-in interpreter/tool that prints a recorded output and records how it was called."""
    script = tmp_path / name
    script.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/calls\ncat {FIXTURES / fixture}\nexit {exit_code}\n')
    script.chmod(0o755)
    return str(script)


def test_the_handler_reports_every_source_and_only_lists(sqlite_store, tmp_path):
    web = tmp_path / "web"
    web.mkdir()
    (web / "package.json").write_text("{}")
    result = run_handler(
        sqlite_store,
        "deps.check",
        {
            "python": [_replay(tmp_path, "python", "pip-list-outdated.json", 0)],
            "npm_projects": [str(web)],
            "npm_command": [_replay(tmp_path, "npm", "npm-outdated.json", 1)],
            "apt": "off",
            "warn_on": ["major"],
        },
    )
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == ["-m pip list --outdated --format json", "outdated --json"]
    assert not any(word in " ".join(calls) for word in ("install", "update", "upgrade"))
    assert result["by_level"] == {"major": 3, "minor": 3, "patch": 1, "unknown": 0}
    assert result["outcome"] == "warning"  # warn_on: major
    assert len(result["checked"]) == 2


def test_without_warn_on_outdated_packages_are_reported_not_judged(sqlite_store, tmp_path):
    result = run_handler(
        sqlite_store, "deps.check", {"python": [_replay(tmp_path, "python", "pip-list-outdated.json", 0)], "apt": "off"}
    )
    assert result["outcome"] == "ok"
    assert len(result["packages"]) == 5


@pytest.mark.skipif(shutil.which("apt") is None, reason="apt is not installed")
def test_apt_is_listed_for_real_when_present(sqlite_store):
    result = run_handler(sqlite_store, "deps.check", {"apt": "on", "security_outcome": "ok"})
    assert result["checked"] == ["apt"]
    assert all(
        p["source"] == "apt" and p["level"] in ("major", "minor", "patch", "unknown") for p in result["packages"]
    )

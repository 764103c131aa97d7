"""Every example in the docs passes `upkeep apply`: each ```yaml block of README.md and docs/, and
each commented example of the file `upkeep init` writes, uncommented. An invalid target is one line
naming file, line and field, and nothing is written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from support.servers import free_port
from upkeep.cli.main import app
from upkeep.config_file import TEMPLATE, render_template

ROOT = Path(__file__).parent.parent
EXAMPLE_START = re.compile(r"^(\s*)# ((- )?[a-z_]+:)")  # a commented key or list item; prose is not


def doc_blocks() -> list[tuple[str, str]]:
    out = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]:
        for n, block in enumerate(re.findall(r"^```yaml\n(.*?)^```", path.read_text(), re.M | re.S), 1):
            out.append((f"{path.relative_to(ROOT)}#{n}", block))
    return out


def template_examples(text: str) -> list[tuple[str, str]]:
    """The template with one commented example uncommented, for each example: a commented key or
    list item and the more indented commented lines under it."""
    lines = text.splitlines()
    body = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))  # after the header
    out = []
    i = body
    while i < len(lines):
        match = EXAMPLE_START.match(lines[i])
        if not match:
            i += 1
            continue
        indent = match.group(1)
        end = i + 1
        while end < len(lines) and re.match(rf"^{re.escape(indent)}#\s{{2,}}\S", lines[end]):
            end += 1
        variant = [*lines[:i], *(indent + line[len(indent) + 2 :] for line in lines[i:end]), *lines[end:]]
        out.append((f"{TEMPLATE.name} line {i + 1}: {match.group(2)}", "\n".join(variant) + "\n"))
        i = end
    return out


TEMPLATE_TEXT = render_template(Path("/var/lib/upkeep"))
RUNBOOKS_TEXT = render_template(Path("/var/lib/upkeep"), "runbooks")
EXAMPLES = doc_blocks() + template_examples(TEMPLATE_TEXT) + [("the runbooks template", RUNBOOKS_TEXT)]


def test_the_examples_were_all_found():
    assert len(doc_blocks()) == 8
    # the runbooks template adds tasks and checklists, no further commented examples
    labels = [[label for label, _ in template_examples(text)] for text in (TEMPLATE_TEXT, RUNBOOKS_TEXT)]
    assert labels[0] == labels[1]
    found = [label.split(": ", 1)[1] for label, _ in template_examples(TEMPLATE_TEXT)]
    assert found == [
        "worker_processes:",
        "heartbeat_seconds:",
        "database_url:",
        "public_url:",
        "services:",
        "databases:",
        "logs:",
        "backups:",
        "ops:",
        "- name:",
        "- name:",
        "- name:",
    ]


def _apply(tmp_path: Path, monkeypatch, text: str, *args: str):
    config = tmp_path / "upkeep.yaml"
    config.write_text(text)
    monkeypatch.chdir(tmp_path)
    for key in ("UPKEEP_CONFIG", "UPKEEP_DATA_DIR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("UPKEEP_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")  # env wins over the file
    return CliRunner().invoke(app, ["--config", str(config), "apply", *args])


@pytest.mark.parametrize(("label", "text"), EXAMPLES, ids=[label for label, _ in EXAMPLES])
def test_every_example_passes_apply(tmp_path, monkeypatch, label, text):
    result = _apply(tmp_path, monkeypatch, text, "--dry-run")
    assert result.exit_code == 0, (label, result.stdout, result.stderr)
    assert "would change" in result.stdout or "no changes" in result.stdout


@pytest.mark.parametrize(
    ("target", "line", "field"),
    [
        ("api: {type: http, url: 'http://x/', expect: {jsonpath: '$.ok == true'}}", 3, "targets.services.api.expect"),
        ("api: {url: 'http://x/', expect_status: 200}", 3, "targets.services.api.type"),
        ("api:\n      type: http\n      url: 'http://x/'\n      warn_ms: soon", 6, "targets.services.api.warn_ms"),
    ],
    ids=["unknown-field", "no-type", "bad-value"],
)
def test_an_invalid_target_fails_apply_naming_file_line_and_field(tmp_path, monkeypatch, target, line, field):
    text = f"targets:\n  services:\n    {target}\ntasks:\n  - {{name: a, type: debug.noop}}\n"
    result = _apply(tmp_path, monkeypatch, text)
    assert result.exit_code == 2, result.stdout
    message = result.stderr.strip()
    assert message.startswith(f"error: upkeep.yaml line {line}: {field}: "), message
    assert len(message.splitlines()) == 1
    assert not (tmp_path / "store.db").exists()  # checked before the store is opened: nothing written


def test_an_unknown_kind_of_target_fails_apply(tmp_path, monkeypatch):
    result = _apply(tmp_path, monkeypatch, "targets:\n  service:\n    api: {type: tcp, port: 25}\n")
    assert result.exit_code == 2 and "line 2: targets.service: unknown kind of target" in result.stderr
    assert "services" in result.stderr


def test_doctor_and_serve_check_the_targets_too(tmp_path, monkeypatch):
    text = "targets:\n  services:\n    api: {type: http, url: 'http://x/', expect: {jsonpath: '$.ok == true'}}\n"
    config = tmp_path / "upkeep.yaml"
    config.write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UPKEEP_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    doctor = CliRunner().invoke(app, ["--config", str(config), "doctor"])
    assert doctor.exit_code != 0 and "upkeep.yaml line 3: targets.services.api.expect" in doctor.stdout
    (tmp_path / "store.db").unlink(missing_ok=True)  # doctor checks the store too
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPKEEP_")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    serve = subprocess.run(
        [sys.executable, "-m", "upkeep.cli.main", "--config", str(config), "serve", "--port", str(free_port())],
        env={**env, "UPKEEP_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert serve.returncode == 2, serve.stderr
    assert "upkeep.yaml line 3: targets.services.api.expect" in serve.stderr
    assert not (tmp_path / "store.db").exists()  # refused before the store was opened

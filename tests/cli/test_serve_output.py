"""What `upkeep serve` (and so `make run`) prints: where it listens, not every request the UI makes."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request

import pytest

from support.servers import free_port, wait_for_port


def _serve_and_get(subprocess_env, root, *flags: str) -> str:
    """What a `upkeep serve` that answered two requests printed (stdout and stderr), once stopped."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "upkeep.cli.main",
            "serve",
            "--port",
            str(port),
            "--no-worker",
            "--no-scheduler",
            *flags,
        ],
        env=subprocess_env,
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, timeout=60)
        for path in ("/healthz", "/readyz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
                assert response.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    return stdout + stderr


@pytest.fixture
def initialised(cli, subprocess_env):
    cli("init", "--force")  # over the empty config every test starts with
    return cli


def test_serve_does_not_log_each_request_by_default(initialised, subprocess_env):
    printed = _serve_and_get(subprocess_env, initialised.root)
    assert "http://127.0.0.1:" in printed  # where it listens: what the user needs
    assert "GET /healthz" not in printed and "GET /readyz" not in printed, printed


def test_the_access_log_is_one_flag_or_setting_away(initialised, subprocess_env):
    assert "GET /healthz" in _serve_and_get(subprocess_env, initialised.root, "--access-log")
    text = initialised.config.read_text()
    assert text.count("\nserver:\n") == 1
    initialised.write(text.replace("\nserver:\n", "\nserver:\n  access_log: true\n"))
    assert "GET /readyz" in _serve_and_get(subprocess_env, initialised.root)

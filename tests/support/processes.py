"""upkeep's own commands started as separate processes for a test (``serve``, ``worker``,
``scheduler``), each in a session of its own with its output in ``<tmp_path>/<name>.log``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


class UpkeepProcesses:
    """Started commands by name; a subclass sets ``tmp_path`` and ``env``."""

    tmp_path: Path
    env: dict[str, str]

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.tmp_path / f"{name}.log", "ab")  # noqa: SIM115 - the process writes to it
        proc = subprocess.Popen(
            [sys.executable, "-m", "upkeep.cli.main", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` (SIGKILL: to the whole session) and wait; SIGKILL the session after 30 s."""
        proc = self.procs.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, sig) if sig == signal.SIGKILL else proc.send_signal(sig)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

"""Running a backup's client tool: its end is waited for, a cancel kills it, a failure says why."""

from __future__ import annotations

import threading

import psutil
import pytest

from upkeep.engine.context import RunCancelled
from upkeep.errors import UserError
from upkeep.handlers.backup.sources.process import run_streaming


class _Ctx:
    secrets = ()

    def __init__(self) -> None:
        self.cancel = threading.Event()

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise RunCancelled("cancel requested")


def test_a_tool_that_closes_its_stderr_early_is_still_waited_for(tmp_path):
    marker = tmp_path / "done"
    text = run_streaming(_Ctx(), ["sh", "-c", f"echo said >&2; exec 2>&-; sleep 0.3; touch {marker}"], {}, None)
    assert text == "said\n"
    assert marker.exists()


def test_a_cancel_kills_a_running_tool(tmp_path):
    ctx = _Ctx()
    pid_file = tmp_path / "pid"
    timer = threading.Timer(0.3, ctx.cancel.set)
    timer.start()
    with pytest.raises(RunCancelled):
        run_streaming(ctx, ["sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"], {}, None)
    timer.join()
    pid = int(pid_file.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_failing_tool_raises_with_the_tail_of_its_stderr():
    with pytest.raises(UserError, match=r"sh exited with 3: .*broken"):
        run_streaming(_Ctx(), ["sh", "-c", "echo broken >&2; exit 3"], {}, None)

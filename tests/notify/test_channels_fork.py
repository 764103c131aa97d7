"""A process that sent through apprise and then forks: the child's own sends still go out (apprise's
process-wide thread pools would otherwise be inherited without their threads, and wait forever)."""

from __future__ import annotations

import os

from notify_receivers import HttpReceiver

from upkeep.notify.channels import Channel, send


def test_a_child_forked_after_a_send_sends_too():
    receiver = HttpReceiver().start()
    try:
        channel = Channel(name="hook", url=f"json://127.0.0.1:{receiver.port}/hook", timeout=3)
        send(channel, "from the parent", "body")
        pid = os.fork()
        if pid == 0:  # the child: exit 0 only when its send was accepted
            try:
                send(channel, "from the child", "body")
                os._exit(0)
            except BaseException:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert [r.json()["title"] for r in receiver.requests] == ["from the parent", "from the child"]
    finally:
        receiver.stop()

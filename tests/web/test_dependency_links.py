"""The task page names the tasks it runs after and the tasks that follow it, as links."""

from __future__ import annotations

from test_pages import login


def test_task_page_lists_upstream_and_downstream_tasks(api):
    for name, after in (("backup", None), ("vacuum", None), ("report", ["backup", "vacuum"]), ("verify", ["backup"])):
        extra = {"after": {"tasks": after, "within": "6h"}} if after else {}
        api.upkeep.create_task({"name": name, "type": "debug.noop", **extra}, actor="test")
    login(api)
    backup = api.client.get("/tasks/backup").text
    assert "Followed by" in backup and "Runs after" not in backup
    assert '<a href="/tasks/report">report</a>, <a href="/tasks/verify">verify</a>' in backup
    report = api.client.get("/tasks/report").text
    assert '<a href="/tasks/backup">backup</a>, <a href="/tasks/vacuum">vacuum</a> (on success, within 6h)' in report
    assert "Followed by" not in report

"""``after:`` through upkeep.yaml and the CLI: cycles refused at apply with the path, exit 2;
``tasks show`` lists upstream and downstream tasks; export applies back unchanged."""

from __future__ import annotations

import json

CHAIN = """tasks:
  - {name: backup, type: debug.noop, schedule: '@daily'}
  - {name: vacuum, type: debug.noop}
  - {name: verify, type: debug.noop, after: {tasks: [backup]}}
  - name: report
    type: debug.noop
    after: {tasks: [backup, vacuum], on: completion, within: 6h}
"""


def test_apply_show_and_export_after(cli, tmp_path):
    cli.write(CHAIN)
    cli("apply")
    shown = cli("tasks", "show", "backup").stdout
    assert "upstream:" in shown and "downstream:             report, verify" in shown
    report = cli("tasks", "show", "report").stdout
    assert "upstream:               backup, vacuum (on completion, within 6h)" in report
    data = json.loads(cli("tasks", "show", "verify", "--json").stdout)
    assert data["after"] == {"tasks": ["backup"], "on": "success", "within": "24h"}
    assert data["upstream"] == ["backup"] and data["downstream"] == []
    assert "no changes" in cli("apply").stdout
    exported = tmp_path / "exported.yaml"
    cli("export", "-o", str(exported))
    assert json.loads(cli("apply", "-f", str(exported), "--json").stdout)["update"] == {}


def test_apply_refuses_a_cycle_naming_the_path_and_writes_nothing(cli):
    cli.write(CHAIN)
    cli("apply")
    before = cli.dump()
    cli.write(CHAIN.replace("'@daily'}", "'@daily', after: {tasks: [verify]}}"))
    result = cli("apply", expect=2)
    assert "cycle: backup → verify → backup" in result.stderr or "cycle: verify → backup → verify" in result.stderr
    assert "upkeep.yaml" in result.stderr and "Traceback" not in result.stderr
    assert cli.dump() == before


def test_apply_refuses_an_unknown_upstream_and_bad_bounds(cli):
    cli.write("tasks:\n  - {name: a, type: debug.noop, after: {tasks: [ghost]}}\n")
    assert "'ghost', which is no task" in cli("apply", expect=2).stderr
    cli.write(
        "tasks:\n  - {name: a, type: debug.noop}\n  - {name: b, type: debug.noop, after: {tasks: [a], within: 99d}}\n"
    )
    assert "within" in cli("apply", expect=2).stderr


def test_apply_may_reverse_a_dependency_in_one_go(cli):
    cli.write("tasks:\n  - {name: a, type: debug.noop}\n  - {name: b, type: debug.noop, after: {tasks: [a]}}\n")
    cli("apply")
    cli.write("tasks:\n  - {name: a, type: debug.noop, after: {tasks: [b]}}\n  - {name: b, type: debug.noop}\n")
    cli("apply")
    assert json.loads(cli("tasks", "show", "b", "--json").stdout)["downstream"] == ["a"]
    cli.write("tasks:\n  - {name: a, type: debug.noop}\n")
    cli("apply", "--prune")
    assert json.loads(cli("tasks", "show", "a", "--json").stdout)["downstream"] == []

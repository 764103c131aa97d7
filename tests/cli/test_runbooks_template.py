"""``upkeep init --template runbooks`` writes the seeds' daily to yearly work as tasks and
checklists; in a fresh directory ``upkeep apply`` then passes, and the checklists it defines open."""

from __future__ import annotations

import json

import yaml

from upkeep.config_file import load_config, validate_tasks

TIERS = ("daily", "weekly", "monthly", "quarterly", "yearly")


def test_init_runbooks_then_apply_passes_in_a_fresh_directory(cli):
    cli.config.unlink()
    cli("init", "--template", "runbooks")
    diff = json.loads(cli("apply", "--json").stdout)
    assert diff["update"] == {} and diff["delete"] == [] and not diff["warnings"]
    assert "no changes" in cli("apply").stdout

    tasks = {t["name"]: t for t in validate_tasks(load_config(cli.config))}
    assert set(diff["create"]) == set(tasks)
    assert {"upkeep-health", "upkeep-store-backup"} <= set(tasks)  # the default's own upkeep is kept
    checklists = {n: t for n, t in tasks.items() if t["type"] == "checklist.run"}
    for tier in TIERS:  # each tier has its scripted half and its checklist for people
        assert any(tier in t["tiers"] for t in tasks.values() if t["type"] != "checklist.run"), tier
        assert f"{tier}-checklist" in checklists, tier
    assert {"pre-deployment", "post-deployment"} <= set(checklists)
    texts = " | ".join(item["text"] for t in checklists.values() for item in t["config"]["items"])
    for seed in ("User access reviewed", "Firewall rules checked", "Documentation and procedures reviewed"):
        assert seed in texts  # the seeds' checklist items for people
    for name, task in checklists.items():  # every automatic item follows a task of the same file
        for item in task["config"]["items"]:
            assert item.get("task") in (None, *tasks), (name, item)


def test_a_runbooks_checklist_opens_with_its_automatic_items_judged(cli):
    cli.config.unlink()
    cli("init", "--template", "runbooks")
    cli("apply")
    cli("run", "weekly-config-audit")
    run = cli("run", "weekly-checklist")
    assert "checklist 1 opened: 6 items, 1 of 2 automatic filled" in run.stdout
    shown = json.loads(cli("checklists", "show", "1", "--json").stdout)
    audit, verify = shown["items"][1], shown["items"][0]
    assert (audit["state"], audit["by"]) == ("checked", "task:weekly-config-audit")
    assert verify["state"] == "open" and verify["evidence"]["verdict"] == "missing"
    assert "weekly-backup-verify has not run within 8d" in verify["evidence"]["reason"]


def test_an_unknown_template_writes_nothing(cli):
    cli.config.unlink()
    refused = cli("init", "--template", "nope", expect=2)
    assert "unknown template 'nope'" in refused.stderr and "runbooks" in refused.stderr
    assert not cli.config.exists() and not cli.data_dir.exists()


def test_the_runbooks_template_is_the_default_and_more(cli):
    from pathlib import Path

    from upkeep.config_file import render_template

    default = yaml.safe_load(render_template(Path("/srv/x")))
    runbooks = yaml.safe_load(render_template(Path("/srv/x"), "runbooks"))
    assert {k: v for k, v in runbooks.items() if k != "tasks"} == {k: v for k, v in default.items() if k != "tasks"}
    assert runbooks["tasks"][: len(default["tasks"])] == default["tasks"]

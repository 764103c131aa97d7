"""``upkeep users`` and ``upkeep checklists`` from the CLI: passwords never in an argument or an
output, one clear line and exit 2 for every mistake, ticks audited under the person's name."""

from __future__ import annotations

import json

from upkeep.people import accounts
from upkeep.people.checklists import NewItem, open_checklist
from upkeep.store.db import Store


def _store(cli) -> Store:
    store = Store(cli.db_url)
    store.upgrade()
    return store


def test_users_create_list_disable_enable_and_reset(cli):
    created = cli("users", "create", "alice", "--role", "operator", "--password-stdin", input="first password\n")
    assert "created operator account 'alice'" in created.stdout
    cli("users", "create", "sso-bob", "--role", "viewer", "--no-password")
    listed = json.loads(cli("users", "list", "--json").stdout)
    assert [(u["name"], u["role"], u["password"]) for u in listed] == [
        ("alice", "operator", True),
        ("sso-bob", "viewer", False),
    ]
    assert "argon2" not in cli("users", "list", "--json").stdout and "first password" not in created.stdout
    store = _store(cli)
    assert accounts.sign_in(store, "alice", "first password").ok
    assert not accounts.sign_in(store, "sso-bob", "").ok  # the proxy's account has no password

    cli("users", "disable", "alice")
    assert accounts.sign_in(store, "alice", "first password").reason == "account disabled"
    cli("users", "enable", "alice")
    cli("users", "reset", "alice", "--password-stdin", input="second password\n")
    assert not accounts.sign_in(store, "alice", "first password").ok
    assert accounts.sign_in(store, "alice", "second password").ok
    entries = [(e["actor"].split(":")[0], e["action"]) for e in _audit(store, "user")]
    assert entries == [("cli", a) for a in ("reset", "enable", "disable", "create", "create")]
    store.dispose()


def _audit(store, object_type):
    from upkeep.app import Upkeep
    from upkeep.settings import Settings

    return Upkeep(Settings(database_url=store.url), store).list_audit(object_type=object_type)[0]


def test_users_mistakes_are_one_line_and_exit_2(cli):
    cli("users", "create", "alice", "--role", "viewer", "--password-stdin", input="long enough\n")
    cases = [
        (["users", "create", "alice", "--role", "viewer", "--password-stdin"], "long enough\n", "exists"),
        (["users", "create", "carol", "--role", "boss", "--password-stdin"], "long enough\n", "unknown role"),
        (["users", "create", "carol", "--role", "viewer", "--password-stdin"], "short\n", "8 to 1024 characters"),
        (["users", "create", "carol", "--role", "viewer"], "", "--password-stdin"),  # no terminal to ask
        (["users", "create", "bad name!", "--role", "viewer", "--no-password"], "", "invalid account name"),
        (["users", "disable", "nobody"], "", "no account 'nobody'"),
        (["users", "reset", "alice", "--password-stdin"], "", "read no password"),
    ]
    for args, stdin, message in cases:
        result = cli(*args, input=stdin, expect=2)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
    assert [u["name"] for u in json.loads(cli("users", "list", "--json").stdout)] == ["alice"]


def test_checklists_from_the_cli_sign_as_a_named_person(cli):
    cli("users", "create", "alice", "--role", "operator", "--password-stdin", input="alice password\n")
    cli("users", "create", "victor", "--role", "viewer", "--password-stdin", input="victor password\n")
    store = _store(cli)
    opened = open_checklist(store, title="Weekly", items=[NewItem("Logs reviewed"), NewItem("Firewall checked")])
    number = str(opened["id"])

    shown = cli("checklists", "show", number)
    assert f"checklist {number}: Weekly" in shown.stdout and "open; 0 of 2 done" in shown.stdout
    assert shown.stdout.index("Logs reviewed") < shown.stdout.index("Firewall checked")
    assert "needs operator" in cli("checklists", "check", number, "1", "--as", "victor", expect=2).stderr
    assert "no account 'eve'" in cli("checklists", "check", number, "1", "--as", "eve", expect=2).stderr
    assert "needs a reason" in cli("checklists", "skip", number, "2", "--as", "alice", "--reason", " ", expect=2).stderr
    assert "has no item 3 (items 1-2)" in cli("checklists", "check", number, "3", "--as", "alice", expect=2).stderr

    cli("checklists", "check", number, "1", "--as", "alice", "--note", "nothing odd")
    assert "was checked by user:alice" in cli("checklists", "check", number, "1", "--as", "alice", expect=2).stderr
    done = cli("checklists", "skip", number, "2", "--as", "alice", "--reason", "firewall moved to the provider")
    assert f"checklist {number} completed, outcome warning" in done.stdout
    view = json.loads(cli("checklists", "show", number, "--json").stdout)
    assert [(i["state"], i["by"], i["note"]) for i in view["items"]] == [
        ("checked", "user:alice", "nothing odd"),
        ("skipped", "user:alice", "firewall moved to the provider"),
    ]
    entries = _audit(store, "checklist")
    assert [(e["actor"], e["action"]) for e in entries[:3]] == [
        ("user:alice", "complete"),
        ("user:alice", "skip"),
        ("user:alice", "check"),
    ]
    assert entries[2]["detail"].startswith("signed in the CLI by cli:")
    listed = json.loads(cli("checklists", "list", "--status", "completed", "--json").stdout)
    assert [c["id"] for c in listed["checklists"]] == [opened["id"]]
    assert "unknown status" in cli("checklists", "list", "--status", "nope", expect=2).stderr
    store.dispose()

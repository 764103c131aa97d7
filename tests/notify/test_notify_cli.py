"""``upkeep notify``: test a channel (exit 0/2), silences, and secrets at send time."""

from __future__ import annotations

import pytest
from notify_receivers import HttpReceiver, SmtpServer
from typer.testing import CliRunner

from upkeep.app import Upkeep
from upkeep.cli.common import State
from upkeep.cli.notify import notify_app
from upkeep.errors import UserError
from upkeep.notify.channels import resolve_url
from upkeep.settings import Settings
from upkeep.store.db import Store
from upkeep.store.records import CONFIG_DOMAIN, Records

PASSWORD = "p@ss/w:rd-123"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("UPKEEP_TEST_SMTP_PASSWORD", PASSWORD)
    smtp = SmtpServer("alerts", PASSWORD).start()
    http = HttpReceiver().start()
    settings = Settings(config=tmp_path / "upkeep.yaml")
    store = Store(settings.resolved_database_url)
    store.upgrade()
    Records(store, CONFIG_DOMAIN).put(
        "channels",
        {
            "email": {
                "url": f"mailto://alerts:${{env:UPKEEP_TEST_SMTP_PASSWORD}}@127.0.0.1:{smtp.port}"
                "?from=upkeep@example.com&to=ops@example.com"
            },
            "hook": {"url": f"json://127.0.0.1:{http.port}/hook"},
            "unset": {"url": "json://127.0.0.1:1/x?token=${env:UPKEEP_TEST_NOT_SET}"},
        },
    )
    Upkeep(settings, store).create_task({"name": "nightly", "type": "debug.noop"}, actor="test")
    runner = CliRunner()

    def invoke(*args):
        """Through the real ``upkeep`` root when it imports (it maps a UserError to exit 2);
        otherwise the notify group alone, with the same mapping."""
        try:
            from upkeep.cli.main import app

            return runner.invoke(app, ["--config", str(tmp_path / "upkeep.yaml"), "notify", *args])
        except ImportError:
            result = runner.invoke(notify_app, list(args), obj=State(config=str(tmp_path / "upkeep.yaml")))
            if isinstance(result.exception, UserError):
                result.exit_code = 2
                result.output_bytes += f"error: {result.exception}".encode()
            return result

    yield invoke, smtp, http, store
    smtp.stop()
    http.stop()
    store.dispose()


def channel_tests(store) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """What the store keeps of channel tests: (channel, status) in the notification history and
    (actor, channel, status) in the audit log, oldest first."""
    import sqlalchemy as sa

    from upkeep.app.notifications import recent_notifications
    from upkeep.store.models import AuditEntry

    history = [(n["channel"], n["status"]) for n in reversed(recent_notifications(store)) if n["kind"] == "test"]
    query = sa.select(AuditEntry).where(AuditEntry.object_type == "channel", AuditEntry.action == "test")
    with store.read() as s:
        audit = [(e.actor, e.object_id, e.after["status"]) for e in s.scalars(query.order_by(AuditEntry.id))]
    return history, audit


def test_notify_test_sends_a_message_and_exits_0(cli):
    invoke, smtp, http, store = cli
    result = invoke("test", "email")
    assert result.exit_code == 0, result.output
    [mail] = smtp.messages
    assert mail.subject == "[upkeep] TEST email: test message"
    assert PASSWORD not in result.output
    assert invoke("test", "hook").exit_code == 0
    assert http.requests[0].json()["title"] == "[upkeep] TEST hook: test message"
    # recorded as the API's "Send test" records it
    history, audit = channel_tests(store)
    assert history == [("email", "sent"), ("hook", "sent")]
    assert [(channel, status) for _, channel, status in audit] == history
    assert all(who.startswith("cli:") for who, _, _ in audit)


def test_notify_test_exits_2_naming_the_problem_when_the_channel_fails(cli):
    invoke, smtp, http, store = cli
    http.status = 500
    failed = invoke("test", "hook")
    assert failed.exit_code == 2
    assert "did not accept" in failed.output
    assert channel_tests(store)[0] == [("hook", "failed")]
    unknown = invoke("test", "nope")
    assert unknown.exit_code == 2
    unset = invoke("test", "unset")
    assert unset.exit_code == 2
    assert "UPKEEP_TEST_NOT_SET" in unset.output


def test_silence_and_silences_list(cli):
    invoke, *_, store = cli
    added = invoke("silence", "nightly", "--until", "2h", "--reason", "migration")
    assert added.exit_code == 0, added.output
    channel = invoke("silence", "--channel", "email", "--until", "2999-01-01T00:00:00Z")
    assert channel.exit_code == 0, channel.output
    listed = invoke("silences", "list", "--json")
    assert listed.exit_code == 0
    import json

    rows = json.loads(listed.output)
    assert {(json.dumps(r["match"]), r["reason"]) for r in rows} == {
        ('{"task": "nightly"}', "migration"),
        ('{"channel": "email"}', ""),
    }
    assert invoke("silence", "ghost", "--until", "1h").exit_code == 2  # unknown task
    assert invoke("silence", "nightly", "--until", "yesterday").exit_code == 2
    assert invoke("silence", "--until", "1h").exit_code == 2  # nothing to match
    assert invoke("silence", "nightly").exit_code == 2  # neither until nor a window
    bad = invoke("silence", "nightly", "--window", "Sun 02:00-05:00 Europe/Zagrebb")
    assert bad.exit_code == 2 and "windows.0" in bad.output and "Europe/Zagrebb" in bad.output
    ended = invoke("unsilence", str(rows[0]["id"]))
    assert ended.exit_code == 0
    assert len(json.loads(invoke("silences", "list", "--json").output)) == 1
    weekly = invoke("silence", "--tier", "weekly", "--window", "Sun 02:00-05:00 Europe/Zagreb", "--json")
    assert weekly.exit_code == 0, weekly.output
    assert json.loads(weekly.output)["windows"] == ["Sun 02:00-05:00 Europe/Zagreb"]
    assert json.loads(weekly.output)["until"] is None
    audit, _ = Upkeep(Settings(), store).list_audit(object_type="silence")
    assert {a["action"] for a in audit} == {"silence", "unsilence"}


def test_secret_references_in_channel_urls_are_url_encoded_unless_they_are_the_whole_url():
    url, secrets = resolve_url("mailto://u:${env:P}@h:25", {"P": "a@b/c"})
    assert url == "mailto://u:a%40b%2Fc@h:25"
    assert "a@b/c" in secrets
    url, _ = resolve_url("${env:HOOK}", {"HOOK": "json://h:1/x?a=b"})
    assert url == "json://h:1/x?a=b"

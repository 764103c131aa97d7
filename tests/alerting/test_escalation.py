"""Acknowledge and escalate: an alert nobody acknowledges reaches the escalation channel once, 30
minutes after it opened; one acknowledged before (through the signed link in its message) never
does; recovery sends one resolution to every channel that was alerted. Real SMTP and webhooks."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from alerting_world import delivered
from typer.testing import CliRunner

from upkeep.app.alerts import get_alert, list_alerts

CONFIG = """\
tasks:
  - name: nightly-vacuum
    type: debug.sleep
    config: {seconds: 0}
    notify:
      channels: [email, hook]
      escalate: [{after: 30m, channels: [pager]}]
"""


@pytest.fixture
def vacuum(world):
    world.apply(CONFIG)
    world.evaluate()
    return world


def _open(world, at: datetime) -> dict:
    world.run("nightly-vacuum", outcome="critical")
    assert delivered(world.evaluate(at)) == [("email", "outcome", "sent"), ("hook", "outcome", "sent")]
    [alert] = list_alerts(world.store, state="open")
    return alert


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
def test_unacknowledged_for_30_minutes_the_escalation_channel_gets_exactly_one_message(vacuum):
    world, t0 = vacuum, datetime.now(UTC)
    alert = _open(world, t0)
    assert delivered(world.evaluate(t0 + timedelta(minutes=29))) == []
    assert world.posts("/pager") == []
    assert delivered(world.evaluate(t0 + timedelta(minutes=31))) == [("pager", "escalation", "sent")]
    assert delivered(world.evaluate(t0 + timedelta(hours=3))) == []
    [page] = world.posts("/pager")
    assert page["title"] == "[upkeep] ESCALATED CRITICAL nightly-vacuum: completed, outcome critical"
    assert "Not acknowledged 30m after it opened" in page["message"]
    assert "/alerts/ack/" in page["message"]

    world.run("nightly-vacuum")  # it recovers: one resolution to each channel that was alerted
    notes = world.evaluate(t0 + timedelta(hours=3, minutes=1))
    assert delivered(notes) == [
        ("email", "recovery", "sent"),
        ("hook", "recovery", "sent"),
        ("pager", "recovery", "sent"),
    ]
    assert [p["title"] for p in world.posts("/pager")][1].startswith("[upkeep] RESOLVED nightly-vacuum: recovered")
    assert len(world.smtp.messages) == 2 and len(world.posts("/hook")) == 2 and len(world.posts("/pager")) == 2
    done = get_alert(world.store, alert["id"])
    assert done["state"] == "resolved" and done["escalated"] == 1
    assert [(d["channel"], d["kind"], d["status"]) for d in done["deliveries"]] == [
        ("email", "alert", "sent"),
        ("hook", "alert", "sent"),
        ("pager", "escalation", "sent"),
        ("email", "resolution", "sent"),
        ("hook", "resolution", "sent"),
        ("pager", "resolution", "sent"),
    ]
    assert delivered(world.evaluate(t0 + timedelta(hours=5))) == []


def test_acknowledged_through_the_link_in_the_alert_it_never_escalates(vacuum):
    world, t0 = vacuum, datetime.now(UTC)
    alert = _open(world, t0)
    [mail] = world.smtp.messages
    link = re.search(r"https://upkeep\.example\.com(/alerts/ack/\S+)", mail.body).group(1)
    assert link in world.posts("/hook")[0]["message"]
    client = world.app()
    page = client.get(link)  # a mail scanner following it acknowledges nothing
    assert page.status_code == 200 and "Acknowledge" in page.text
    assert get_alert(world.store, alert["id"])["state"] == "open"
    done = client.post(link)
    assert done.status_code == 200 and "Acknowledged" in done.text
    acked = get_alert(world.store, alert["id"])
    assert (acked["state"], acked["acknowledged_by"]) == ("acknowledged", f"link:alert-{alert['id']}")

    assert delivered(world.evaluate(t0 + timedelta(minutes=31))) == []
    assert delivered(world.evaluate(t0 + timedelta(hours=5))) == []
    world.run("nightly-vacuum", outcome="critical")  # still failing, past the repeat interval:
    assert delivered(world.evaluate(t0 + timedelta(hours=6))) == []  # acknowledged, so no reminder
    assert world.posts("/pager") == []

    world.run("nightly-vacuum")
    assert delivered(world.evaluate(t0 + timedelta(hours=7))) == [
        ("email", "recovery", "sent"),
        ("hook", "recovery", "sent"),
    ]
    assert world.posts("/pager") == []
    assert get_alert(world.store, alert["id"])["state"] == "resolved"
    assert client.post(link).status_code == 409  # resolved: nothing left to acknowledge
    client.close()


def test_a_link_opens_only_its_own_alert(vacuum):
    world, t0 = vacuum, datetime.now(UTC)
    first = _open(world, t0)
    world.apply(CONFIG.replace("nightly-vacuum", "weekly-reindex"))
    world.run("weekly-reindex", outcome="critical")
    world.evaluate(t0)
    second = [a for a in list_alerts(world.store) if a["subject"] == "weekly-reindex"][0]
    links = [re.search(r"(/alerts/ack/\S+)", m.body).group(1) for m in world.smtp.messages]
    first_link, second_link = links[0], links[-1]
    assert first_link != second_link
    client = world.app()
    token = first_link.rsplit("/", 1)[1]
    payload, _, signature = token.partition(".")
    import base64

    forged_payload = (
        base64.urlsafe_b64encode(
            json.dumps([second["id"], json.loads(base64.urlsafe_b64decode(payload + "=="))[1]]).encode()
        )
        .decode()
        .rstrip("=")
    )
    for bad in (f"/alerts/ack/{forged_payload}.{signature}", "/alerts/ack/guess", f"{first_link}x"):
        assert client.post(bad).status_code == 404, bad
    assert {a["state"] for a in list_alerts(world.store)} == {"open"}
    assert client.post(second_link).status_code == 200
    assert get_alert(world.store, first["id"])["state"] == "open"
    assert get_alert(world.store, second["id"])["state"] == "acknowledged"
    client.close()


def test_alerts_list_and_ack_on_the_cli_and_the_api(vacuum, tmp_path):
    from upkeep.auth import create_key
    from upkeep.cli.main import app

    world, t0 = vacuum, datetime.now(UTC)
    alert = _open(world, t0)
    runner = CliRunner()

    def cli(*args):
        return runner.invoke(app, ["--config", str(world.config), "alerts", *args])

    listed = cli("list", "--json")
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert (row["id"], row["state"], [d["channel"] for d in row["deliveries"]]) == (
        alert["id"],
        "open",
        ["email", "hook"],
    )
    table = cli("list")
    assert "nightly-vacuum" in table.output and "2 alert sent" in table.output
    acked = cli("ack", str(alert["id"]))
    assert acked.exit_code == 0 and "acknowledged by cli:" in acked.output
    assert cli("ack", "999").exit_code == 2

    client = world.app()
    viewer = {"Authorization": f"Bearer {create_key(world.store, name='v', role='viewer')[1]}"}
    operator = {"Authorization": f"Bearer {create_key(world.store, name='o', role='operator')[1]}"}
    got = client.get("/api/v1/alerts?state=acknowledged", headers=viewer).json()["items"]
    assert [a["id"] for a in got] == [alert["id"]] and got[0]["acknowledged_by"].startswith("cli:")
    assert client.post(f"/api/v1/alerts/{alert['id']}/ack", headers=viewer).status_code == 403
    assert client.post(f"/api/v1/alerts/{alert['id']}/ack", headers=operator).status_code == 200  # again: no change
    world.run("nightly-vacuum")
    world.evaluate(t0 + timedelta(minutes=5))
    resolved = client.post(f"/api/v1/alerts/{alert['id']}/ack", headers=operator)
    assert resolved.status_code == 409 and resolved.headers["content-type"].startswith("application/problem+json")
    page = client.get("/alerts", headers=viewer)
    assert page.status_code == 200 and "nightly-vacuum" in page.text and "resolution" in page.text
    client.close()

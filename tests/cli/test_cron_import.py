"""`upkeep cron import`: the seeds' crontab lines become tasks whose schedules mean what the lines
do, the first-Sunday line is called out, and nothing is written without --write. Heartbeat mode's
crontab line is run by a real shell with a real curl against a live server."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from upkeep.cli.main import app

SEEDS = Path(__file__).parent.parent / "fixtures" / "cron" / "seeds.crontab"
TZ = "Europe/Zagreb"


def run(tmp_path: Path, *args: str, input: str | None = None):
    result = CliRunner().invoke(app, ["--config", str(tmp_path / "upkeep.yaml"), *args], input=input)
    return result


def imported(tmp_path: Path, *args: str, source: str = str(SEEDS)) -> dict:
    result = run(tmp_path, "cron", "import", source, "--tz", TZ, "--json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def explain(tmp_path: Path, expression: str, count: int) -> list[datetime]:
    result = run(tmp_path, "schedule", "explain", expression, "--tz", TZ, "--count", str(count), "--json")
    assert result.exit_code == 0, result.stderr
    return [datetime.fromisoformat(t) for t in json.loads(result.stdout)["next"]]


def by_line(data: dict) -> dict[int, dict]:
    return {entry["line"]: entry for entry in data["lines"]}


def test_the_seed_lines_become_tasks_whose_schedule_explain_matches_what_each_line_runs(tmp_path):
    lines = by_line(imported(tmp_path))
    assert sorted(lines) == [4, 7, 10, 13, 16, 19]
    assert [lines[n]["spec"]["name"] for n in sorted(lines)] == [
        "maintenance-daily",
        "maintenance-weekly",
        "maintenance-monthly",
        "health-check",
        "monthly-db-maintenance",
        "backup-database",
    ]
    crontab = SEEDS.read_text().splitlines()
    for number, entry in lines.items():
        spec = entry["spec"]
        assert spec["type"] == "shell.run" and spec["timezone"] == TZ
        cron = " ".join(crontab[number - 1].split()[:5])
        # what cron runs: the line's slots, less the days its shell test ("$(date +%u)" = 7) drops
        runs = [t for t in explain(tmp_path, cron, 40) if "date +" not in crontab[number - 1] or t.isoweekday() == 7]
        assert explain(tmp_path, spec["schedule"], 8) == runs[:8], (number, spec["schedule"])
        if number != 16:
            assert entry["warnings"] == [] and entry["notes"][0].startswith("runs as its comment says"), entry
    assert lines[4]["spec"]["config"]["command"] == crontab[3].split(None, 5)[5]


def test_the_first_sunday_line_is_read_as_cron_reads_it_and_the_comment_s_schedule_is_proposed(tmp_path):
    entry = by_line(imported(tmp_path))[16]
    either, kept = entry["warnings"]
    assert "as days 1-7 OR Sundays" in either
    assert kept.startswith('the shell test [ "$(date +%u)" = 7 ] then keeps every Sunday, rather than')
    assert "the first Sunday of the month that the comment promises" in kept
    assert entry["proposed_fix"] == "0 3 * * 0#1"
    assert any("proposed: 0 3 * * 0#1" in note for note in entry["notes"])
    # what it does now, without the test the schedule carries
    assert entry["spec"]["schedule"] == "0 3 * * 0"
    assert entry["spec"]["config"]["command"].startswith(
        "/home/deploy/meta-chat-platform/ops/monthly-db-maintenance.sh"
    )

    fixed = by_line(imported(tmp_path, "--fix"))[16]["spec"]
    assert fixed["schedule"] == "0 3 * * 0#1" and "[" not in fixed["config"]["command"]
    slots = explain(tmp_path, fixed["schedule"], 12)
    assert all(t.isoweekday() == 7 and t.day <= 7 and t.hour == 3 for t in slots)
    assert len({(t.year, t.month) for t in slots}) == 12  # one a month
    text = run(tmp_path, "schedule", "explain", fixed["schedule"], "--tz", TZ).stdout
    assert "first Sunday" in text


def test_nothing_is_written_without_write_and_the_written_file_applies(tmp_path):
    config = tmp_path / "upkeep.yaml"
    config.write_text("# my upkeep\nversion: 1\ntasks:\n  - {name: own, type: debug.noop}  # mine\n")
    before = config.read_text()
    shown = run(tmp_path, "cron", "import", str(SEEDS), "--tz", TZ)
    assert shown.exit_code == 0
    assert "+  - name: maintenance-daily" in shown.stdout and "nothing written: pass --write" in shown.stdout
    assert config.read_text() == before

    written = run(tmp_path, "cron", "import", str(SEEDS), "--tz", TZ, "--write")
    assert written.exit_code == 0 and f"wrote {config}" in written.stdout
    text = config.read_text()
    assert text.startswith(before.rstrip("\n"))  # what was there stays, comments included
    assert "# ! cron reads '1-7 * 0'" in text
    applied = run(tmp_path, "--database-url", f"sqlite:///{tmp_path / 's.db'}", "apply", "--dry-run")
    assert applied.exit_code == 0, applied.stderr
    assert "+ create task monthly-db-maintenance (shell.run, 0 3 * * 0)" in applied.stdout

    again = imported(tmp_path, "--write")
    assert again["diff"] == "" and not again["written"]
    assert all(line["already_in_config"] for line in again["lines"])


def test_stdin_percent_reboot_environment_and_the_system_format(tmp_path):
    out = tmp_path / "out.txt"
    crontab = (
        'SHELL=/bin/bash\nPATH=/usr/local/bin:/usr/bin:/bin\nHOME=/srv/app\nMAILTO=""\n'
        f"15 1 * * * root cat > {out}%line one%line two\n"
        "30 2 * * * root echo $(date +\\%F) >> /tmp/dates\n"
        "@reboot root /usr/local/bin/warm-cache\n"
    )
    result = run(tmp_path, "cron", "import", "-", "--tz", "UTC", "--system", "--json", input=crontab)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    lines = by_line(data)
    cat = lines[5]["spec"]["config"]
    assert cat["command"][:2] == ["/bin/bash", "-c"] and cat["user"] == "root" and cat["cwd"] == "/srv/app"
    assert cat["env"] == {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/srv/app"}
    assert any("standard input" in note for note in lines[5]["notes"])
    # the command the task runs feeds the text after % to cat, as cron did
    subprocess.run(cat["command"], check=True)
    assert out.read_text() == "line one\nline two\n"
    assert lines[6]["spec"]["config"]["command"][2] == "echo $(date +%F) >> /tmp/dates"  # \% is a plain %
    assert lines[7]["kind"] == "skipped" and "no upkeep schedule can say" in lines[7]["warnings"][0]
    assert any("MAILTO is empty" in note for note in data["notes"])


def test_a_bad_line_is_reported_and_the_rest_imported(tmp_path):
    result = run(tmp_path, "cron", "import", "-", "--tz", "UTC", "--json", input="61 * * * * x\n0 1 * * * /bin/true\n")
    data = json.loads(result.stdout)
    assert [i["line"] for i in data["invalid"]] == [1] and "minute" in data["invalid"][0]["problem"]
    assert [e["line"] for e in data["lines"]] == [2]
    missing = run(tmp_path, "cron", "import", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "cannot read" in missing.stderr


def test_a_heartbeat_line_pings_its_monitor_through_a_real_shell_and_curl(tmp_path, sqlite_store, monkeypatch):
    sys.path.insert(0, str(Path(__file__).parent.parent / "api"))
    from _env import LiveServer, make_env

    from upkeep.heartbeats import monitors

    env = make_env(tmp_path, sqlite_store)
    with LiveServer(env) as server:
        monkeypatch.setenv("UPKEEP_DATABASE_URL", sqlite_store.url)
        monkeypatch.setenv("UPKEEP_PUBLIC_URL", server.url)
        # before the monitor exists: its line says where the URL goes
        first = by_line(imported(tmp_path, "--heartbeat", "19"))
        assert "<the ping URL of backup-database>/$?" in first[19]["crontab_line"]
        assert first[19]["spec"] == {
            "name": "backup-database",
            "description": "Add daily backup at 2 AM",
            "schedule": "0 2 * * *",
            "timezone": TZ,
            "grace": "1h",
        }
        assert first[4]["kind"] == "task" and first[4]["crontab_line"] is None
        run(tmp_path, "cron", "import", str(SEEDS), "--tz", TZ, "--heartbeat", "19", "--write")
        applied = run(tmp_path, "apply")
        assert applied.exit_code == 0 and "+ create heartbeat backup-database" in applied.stdout, applied.stderr
        line = by_line(imported(tmp_path, "--heartbeat", "19"))[19]["crontab_line"]
        url = monitors.ping_urls(sqlite_store, env.settings)["backup-database"].replace(
            "http://127.0.0.1:8750", server.url
        )
        assert line.startswith("0 2 * * * /home/deploy/") and line.endswith(
            f"; curl -fsS -m 10 --retry 3 -o /dev/null {url}/$?"
        )
        # run the job part as cron would, with the job failing (the script does not exist here)
        command = line.split(None, 5)[5].replace("/var/log/metachat/backup.log", str(tmp_path / "backup.log"))
        subprocess.run(["/bin/sh", "-c", command], check=True)
    view = monitors.get_heartbeat(sqlite_store, "backup-database", datetime.now(ZoneInfo("UTC")), pings=1)
    assert view["last_ping_kind"] == "fail" and view["pings"][0]["exit_status"] == 127
    assert view["pings"][0]["user_agent"].startswith("curl/")


@pytest.mark.parametrize("bad", ["--as", "--tz"])
def test_bad_options_are_one_line_and_exit_2(tmp_path, bad):
    value = {"--as": "cron", "--tz": "Mars/Olympus"}[bad]
    result = run(tmp_path, "cron", "import", str(SEEDS), bad, value)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr

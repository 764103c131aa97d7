"""The same scenarios through the real logrotate and through logs.rotate give the same files.

Both run forced (``logrotate -f`` / ``force: true``) once per round. Rotated names carry the
rotation time, so every round starts on a fresh wall-clock second, logrotate runs, and logs.rotate
runs with an injected clock set to that same second; ``dateformat -%Y%m%d%H%M%S`` makes each round
a new "day" for both. The trees are then compared: names, compression, decompressed contents and
the mode of the recreated log. The one documented difference -- a second rotation under a name
already taken, which logrotate skips and logs.rotate gives a ``.1`` name -- is checked last.
"""

from __future__ import annotations

import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from support.contexts import run_handler
from support.servers import require_binary
from upkeep.clock import FakeClock
from upkeep.handlers.logs.compress import read_all

DATEFORMAT = "-%Y%m%d%H%M%S"

# name -> (logrotate directives, logs.rotate rule options); each scenario has its own directory.
SCENARIOS = {
    "delaycompress": (
        ["rotate 2", "compress", "delaycompress", "dateext", f"dateformat {DATEFORMAT}", "notifempty", "create"],
        {"rotate": 2, "compress": True, "delaycompress": True, "dateformat": DATEFORMAT, "notifempty": True},
    ),
    "ifempty": (
        ["rotate 3", "compress", "dateext", f"dateformat {DATEFORMAT}", "ifempty", "create"],
        {"rotate": 3, "compress": True, "dateformat": DATEFORMAT, "notifempty": False},
    ),
    "numeric": (
        ["rotate 2", "compress", "delaycompress", "nodateext", "notifempty", "create"],
        {"rotate": 2, "compress": True, "delaycompress": True, "dateext": False, "notifempty": True},
    ),
    "plain": (
        ["rotate 1", "nocompress", "dateext", f"dateformat {DATEFORMAT}", "notifempty", "create"],
        {"rotate": 1, "compress": False, "dateformat": DATEFORMAT, "notifempty": True},
    ),
    "missingok": (
        ["rotate 2", "compress", "dateext", f"dateformat {DATEFORMAT}", "missingok", "notifempty", "create"],
        {"rotate": 2, "compress": True, "dateformat": DATEFORMAT, "missingok": True, "notifempty": True},
    ),
}
ROUNDS = 4


def content(scenario: str, round_no: int) -> bytes | None:
    """What each log holds before a round: None = the file does not exist, b"" = empty."""
    if scenario == "missingok" and round_no in (0, 2):
        return None
    if round_no == 2 and scenario != "numeric":
        return b""
    return "".join(f"{scenario} round {round_no} line {i}\n" for i in range(50 * (round_no + 1))).encode()


def write_round(root: Path, round_no: int) -> None:
    for scenario in SCENARIOS:
        log = root / scenario / "app.log"
        data = content(scenario, round_no)
        if data is None:
            log.unlink(missing_ok=True)
        else:
            log.write_bytes(data)
            log.chmod(0o640)


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """relative name -> (decompressed content, mode); compression suffixes are part of the name."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = (read_all(path), path.stat().st_mode & 0o7777)
    return out


def next_second() -> None:
    time.sleep(1.02 - time.time() % 1)


def test_logrotate_and_logs_rotate_produce_the_same_files(sqlite_store, tmp_path):
    logrotate = require_binary("logrotate", [Path("/usr/sbin")])
    theirs, ours = tmp_path / "logrotate", tmp_path / "upkeep"
    for root in (theirs, ours):
        for scenario in SCENARIOS:
            (root / scenario).mkdir(parents=True)
            (root / scenario).chmod(0o755)
    conf = tmp_path / "logrotate.conf"
    conf.write_text(
        "".join(
            f"{theirs / name / 'app.log'} {{\n" + "".join(f"    {d}\n" for d in directives) + "}\n"
            for name, (directives, _) in SCENARIOS.items()
        )
    )
    conf.chmod(0o644)
    state = tmp_path / "logrotate.state"
    rules = [{"name": name, "paths": [str(ours / name / "app.log")], **opts} for name, (_, opts) in SCENARIOS.items()]

    def run_both(round_no: int) -> None:
        next_second()
        proc = subprocess.run([logrotate, "-f", "-s", str(state), str(conf)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        # The rotation time logrotate used, read back from the name it gave (the "ifempty"
        # scenario rotates every round): logs.rotate runs at that same second.
        stamp = max(p.name[len("app.log") :][:15] for p in (theirs / "ifempty").glob("app.log-*"))
        clock = FakeClock(datetime.strptime(stamp, DATEFORMAT).astimezone(UTC))
        config = {"rules": rules, "force": True}
        result = run_handler(sqlite_store, "logs.rotate", config, clock=clock)
        assert result["outcome"] == "ok", result["findings"]

    for round_no in range(ROUNDS):
        write_round(theirs, round_no)
        write_round(ours, round_no)
        run_both(round_no)
        assert tree(ours) == tree(theirs), f"round {round_no} differs"
    # Sanity: the rounds really exercised pruning, delayed compression and the numeric shift.
    final = tree(ours)
    assert sum(1 for n in final if n.startswith("delaycompress/app.log-")) == 2
    assert any(n.startswith("delaycompress/") and n.endswith(".gz") for n in final)
    assert {"numeric/app.log.1", "numeric/app.log.2.gz"} <= set(final)

    # The documented difference: a second rotation under a name already taken (same second here,
    # same day with the default dateformat). logrotate skips it; logs.rotate gives it a .1 name.
    next_second()
    started = int(time.time())
    clock = FakeClock(datetime.fromtimestamp(started, UTC))
    plain_rule = [r for r in rules if r["name"] == "plain"]
    for attempt in (1, 2):
        for root in (theirs, ours):
            (root / "plain" / "app.log").write_text(f"again {attempt}\n")
        subprocess.run([logrotate, "-f", "-s", str(state), str(conf)], capture_output=True, text=True)
        run_handler(sqlite_store, "logs.rotate", {"rules": plain_rule, "force": True}, clock=clock)
    if int(time.time()) == started:  # both attempts fell in the same second
        stamp = datetime.fromtimestamp(started).strftime(DATEFORMAT)
        assert (theirs / "plain" / "app.log").read_text() == "again 2\n"  # logrotate skipped it
        assert (theirs / "plain" / f"app.log{stamp}").read_text() == "again 1\n"
        assert (ours / "plain" / "app.log").read_text() == ""
        assert (ours / "plain" / f"app.log{stamp}.1").read_text() == "again 2\n"  # rotate 1: newest kept
        assert not (ours / "plain" / f"app.log{stamp}").exists()
    assert os.stat(ours / "plain" / "app.log").st_mode & 0o777 == 0o640

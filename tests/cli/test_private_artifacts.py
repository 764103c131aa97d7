"""Artifacts are private: after a full backup, verify and report cycle through the CLI, every file
upkeep wrote under a backup destination or its data directory is mode 600 and every directory 700,
whatever the umask."""

from __future__ import annotations

import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
import yaml


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)  # what most shells give: files 644, directories 755
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def receiver():
    """A webhook that accepts every message (the digest's channel)."""

    class Accept(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"json://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


def _modes(root: Path) -> dict[str, int]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return out


def test_a_backup_verify_and_report_cycle_leaves_only_private_files(cli, pg_server, receiver, loose_umask):
    database = pg_server.create_database()
    with psycopg.connect(pg_server.dsn(database), autocommit=True) as c:
        c.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g")
    site = cli.root / "site"
    site.mkdir()
    (site / "index.html").write_text("<p>hi</p>")
    backups = cli.root / "backups"
    cli.config.unlink()
    cli("init")
    config = {
        "targets": {
            "databases": {"pg": {"url": pg_server.dsn(database)}},
            "files": {"site": {"paths": [str(site)]}},
            "backups": {"nightly": {"path": str(backups)}},
        },
        "channels": {"ops": {"url": receiver}},
        "tasks": [
            {"name": "pg-backup", "type": "backup.create", "config": {"source": "pg", "destination": "nightly"}},
            {"name": "site-backup", "type": "backup.create", "config": {"source": "site"}},
            {
                "name": "store-backup",
                "type": "backup.create",
                "config": {
                    "source": {"type": "sqlite", "path": str(cli.data_dir / "upkeep.db"), "name": "store"},
                    "destination": "nightly",
                    "copy_to": str(cli.root / "offsite"),
                },
            },
            {"name": "verify", "type": "backup.verify", "config": {"which": "all"}},
            {"name": "digest", "type": "report.send", "config": {"channels": ["ops"], "period": "day"}},
        ],
    }
    cli.write(yaml.safe_dump(config))
    cli("apply")
    for task in ("pg-backup", "site-backup", "store-backup", "verify", "digest"):
        cli("run", task)
    cli("report", "--format", "html", "-o", str(cli.data_dir / "reports" / "by-hand.html"))

    written = {"data": _modes(cli.data_dir), "backups": _modes(backups), "offsite": _modes(cli.root / "offsite")}
    assert any(p.endswith(".manifest.json") for p in written["backups"])
    assert any(p.startswith("backups/site/") for p in written["data"])  # the default destination
    assert any(p.startswith("reports/day-") for p in written["data"])
    for where, modes in written.items():
        for path, mode in modes.items():
            is_dir = (cli.data_dir if where == "data" else cli.root / where).joinpath(path).is_dir()
            assert mode == (0o700 if is_dir else 0o600), f"{where}/{path} is {mode:o}"
    for root in (cli.data_dir, backups, cli.root / "offsite"):
        assert stat.S_IMODE(root.stat().st_mode) == 0o700, root

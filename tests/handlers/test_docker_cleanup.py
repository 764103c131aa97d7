"""docker.cleanup against a Docker Engine API served by the test, which records every request."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from support.contexts import events_of, run_handler
from upkeep.errors import ConnectionFailed
from upkeep.handlers.system.docker import parse_until

NOW = datetime.now(UTC)
OLD = int((NOW - timedelta(days=3)).timestamp())
NEW = int((NOW - timedelta(minutes=5)).timestamp())


class FakeEngine:
    """Enough of the Engine API for docker.cleanup; ``requests`` holds (method, path, query) of every call."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []
        self.volumes_in_use = {"db-data"}
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                engine.requests.append((self.command, url.path, query))
                status, body = engine.answer(self.command, url.path, query)
                self._send(status, body)

            do_GET = do_POST = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def host(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def mutating(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _ in self.requests if m != "GET"]

    def answer(self, method: str, path: str, query: dict):
        if path == "/_ping":
            return 200, "OK"
        if (method, path) == ("GET", "/containers/json"):
            return 200, [
                {
                    "Id": "a" * 64,
                    "Names": ["/old-job"],
                    "State": "exited",
                    "Image": "job:1",
                    "Created": OLD,
                    "SizeRw": 10_000_000,
                    "Labels": {"team": "ops"},
                },
                {
                    "Id": "b" * 64,
                    "Names": ["/fresh-job"],
                    "State": "exited",
                    "Image": "job:1",
                    "Created": NEW,
                    "SizeRw": 5_000,
                    "Labels": {"team": "ops"},
                },
                {
                    "Id": "c" * 64,
                    "Names": ["/keep-me"],
                    "State": "exited",
                    "Image": "db:1",
                    "Created": OLD,
                    "SizeRw": 1_000,
                    "Labels": {"keep": "true"},
                },
            ]
        if (method, path) == ("GET", "/images/json"):
            return 200, [{"Id": "sha256:" + "d" * 64, "Created": OLD, "Size": 200_000_000, "Labels": None}]
        if (method, path) == ("GET", "/networks"):
            return 200, [
                {"Id": "n1" * 32, "Name": "bridge", "Created": "2020-01-01T00:00:00Z"},
                {"Id": "n2" * 32, "Name": "old-net", "Created": "2020-01-01T00:00:00.123456789Z"},
                {"Id": "n3" * 32, "Name": "busy-net", "Created": "2020-01-01T00:00:00Z"},
            ]
        if method == "GET" and path.startswith("/networks/"):
            busy = path.endswith("n3" * 32)
            return 200, {"Containers": {"x": {}} if busy else {}}
        if (method, path) == ("GET", "/system/df"):
            return 200, {
                "BuildCache": [
                    {
                        "ID": "cache1",
                        "Type": "regular",
                        "Size": 50_000_000,
                        "InUse": False,
                        "Shared": False,
                        "LastUsedAt": "2020-01-01T00:00:00Z",
                    },
                    {
                        "ID": "cache2",
                        "Type": "regular",
                        "Size": 1,
                        "InUse": True,
                        "Shared": False,
                        "LastUsedAt": "2020-01-01T00:00:00Z",
                    },
                ],
                "Volumes": [
                    {"Name": "scratch", "UsageData": {"Size": 7_000, "RefCount": 0}},
                    {"Name": "db-data", "UsageData": {"Size": 9_000_000, "RefCount": 1}},
                ],
            }
        if method == "GET" and path.startswith("/volumes/"):
            name = path.rsplit("/", 1)[-1]
            return (200, {"Name": name}) if name in ("scratch", "db-data") else (404, {"message": "no such volume"})
        if (method, path) == ("POST", "/containers/prune"):
            return 200, {"ContainersDeleted": ["a" * 64], "SpaceReclaimed": 10_000_000}
        if (method, path) == ("POST", "/images/prune"):
            return 200, {"ImagesDeleted": [{"Deleted": "sha256:" + "d" * 64}], "SpaceReclaimed": 200_000_000}
        if (method, path) == ("POST", "/networks/prune"):
            return 200, {"NetworksDeleted": ["old-net"]}
        if (method, path) == ("POST", "/build/prune"):
            return 200, {"CachesDeleted": ["cache1"], "SpaceReclaimed": 50_000_000}
        if method == "DELETE" and path.startswith("/volumes/"):
            name = path.rsplit("/", 1)[-1]
            return (409, {"message": "volume is in use"}) if name in self.volumes_in_use else (204, None)
        if (method, path) == ("POST", "/volumes/prune"):
            return 200, {"VolumesDeleted": ["everything"], "SpaceReclaimed": 1}
        return 404, {"message": f"page not found: {method} {path}"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def engine():
    server = FakeEngine()
    yield server
    server.close()


def test_dry_run_lists_what_would_go_and_calls_no_mutating_endpoint(sqlite_store, engine):
    result = run_handler(
        sqlite_store,
        "docker.cleanup",
        {"docker_host": engine.host, "until": "24h", "exclude_labels": ["keep=true"]},
        dry_run=True,
    )
    assert engine.mutating() == []
    plan = result["would_remove"]
    assert [c["name"] for c in plan["containers"]] == ["old-job"]  # fresh-job is younger, keep-me is excluded
    assert [i["id"] for i in plan["images"]] == ["d" * 12]
    assert [n["name"] for n in plan["networks"]] == ["old-net"]  # bridge is built in, busy-net is used
    assert [c["id"] for c in plan["build_cache"]] == ["cache1"]
    assert plan["volumes"] == []
    assert result["would_free_bytes"] == 10_000_000 + 200_000_000 + 50_000_000
    plans = [e for e in events_of(sqlite_store, result["_run_id"]) if e["event"] == "plan"]
    assert len(plans) == 4 and all(e["message"].startswith("would remove") for e in plans)


def test_a_real_run_prunes_with_filters_and_never_prunes_volumes(sqlite_store, engine):
    result = run_handler(
        sqlite_store, "docker.cleanup", {"docker_host": engine.host, "until": "2d", "labels": ["team=ops"]}
    )
    paths = [p for _, p in engine.mutating()]
    assert paths == ["/containers/prune", "/images/prune", "/networks/prune", "/build/prune"]
    assert "/volumes/prune" not in [p for _, p, _ in engine.requests]
    filters = {p: json.loads(q["filters"]) for m, p, q in engine.requests if m == "POST"}
    assert filters["/containers/prune"] == {"until": ["172800s"], "label": ["team=ops"]}
    assert filters["/images/prune"]["dangling"] == ["true"]
    assert result["reclaimed_bytes"] == 260_000_000
    assert result["counts"] == {"containers": 1, "images": 1, "networks": 1, "build_cache": 1, "volumes": 0}


def test_only_listed_volumes_are_removed_one_by_one(sqlite_store, engine):
    result = run_handler(
        sqlite_store,
        "docker.cleanup",
        {
            "docker_host": engine.host,
            "containers": False,
            "images": False,
            "networks": False,
            "build_cache": False,
            "volumes": ["scratch", "db-data"],
        },
    )
    assert engine.mutating() == [("DELETE", "/volumes/scratch"), ("DELETE", "/volumes/db-data")]
    assert result["counts"]["volumes"] == 1
    assert result["outcome"] == "warning"  # db-data is in use: the engine refused
    assert any("db-data" in f["message"] for f in result["findings"])


def test_dry_run_with_volumes_reads_their_size_and_deletes_nothing(sqlite_store, engine):
    result = run_handler(
        sqlite_store, "docker.cleanup", {"docker_host": engine.host, "volumes": ["scratch"]}, dry_run=True
    )
    assert engine.mutating() == []
    assert result["would_remove"]["volumes"] == [{"name": "scratch", "bytes": 7_000, "in_use": False}]


def test_no_reachable_engine_is_one_clear_error(sqlite_store, tmp_path):
    with pytest.raises(ConnectionFailed, match=r"no Docker engine reachable at unix://.*docker\.sock"):
        run_handler(sqlite_store, "docker.cleanup", {"docker_host": f"unix://{tmp_path}/docker.sock"})


def test_until_accepts_go_like_durations_and_rejects_others():
    assert parse_until("1h30m") == 5400
    assert parse_until("7d") == 7 * 86400
    assert parse_until(None) is None
    with pytest.raises(Exception, match="not a duration"):
        parse_until("yesterday")

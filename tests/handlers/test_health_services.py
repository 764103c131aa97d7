"""health.check of PostgreSQL, Redis, Docker (Engine API served by the test), processes, TCP, disk,
memory and load, against real servers and processes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler

import pytest
import redis

from support.contexts import events_of, run_handler
from support.servers import free_port, start_postgres, start_redis
from upkeep.handlers.health.probes import pm2, systemd
from upkeep.handlers.health.probes.base import CheckEnv


def check(store, checks, **kwargs):
    result = run_handler(store, "health.check", {"services": [], "checks": checks}, **kwargs)
    return result, {t["name"]: t for t in result["targets"]}


# --- PostgreSQL and Redis: own throwaway instances, because these tests stop them ----------------


@pytest.mark.postgres
def test_postgres_up_is_ok_then_stopped_is_critical(sqlite_store):
    server = start_postgres()
    try:
        checks = [{"name": "db", "type": "postgres", "url": server.dsn("postgres")}]
        result, targets = check(sqlite_store, checks)
        assert targets["db"]["status"] == "ok", targets["db"]
        assert "SELECT 1 in" in targets["db"]["detail"]
        assert targets["db"]["data"]["server_version"] >= 100000
        server.stop()
        result, targets = check(sqlite_store, checks)
        assert result["outcome"] == "critical"
        assert "cannot query PostgreSQL at 127.0.0.1" in targets["db"]["detail"]
    finally:
        server.remove()


@pytest.mark.redis
def test_redis_up_is_ok_memory_near_maxmemory_warns_then_stopped_is_critical(sqlite_store):
    server = start_redis()
    try:
        checks = [{"name": "cache", "type": "redis", "url": server.url}]
        _, targets = check(sqlite_store, checks)
        assert targets["cache"]["status"] == "ok", targets["cache"]
        assert "no maxmemory set" in targets["cache"]["detail"]
        client = redis.Redis.from_url(server.url)
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", str(int(used / 0.85)))  # about 85% used
        client.close()
        _, targets = check(sqlite_store, checks)
        assert targets["cache"]["status"] == "warning"
        assert 80 <= targets["cache"]["data"]["memory_percent"] < 95
        server.stop()
        result, targets = check(sqlite_store, checks)
        assert result["outcome"] == "critical"
        assert targets["cache"]["detail"].startswith("cannot reach Redis at redis://127.0.0.1")
    finally:
        server.remove()


# --- Docker: an Engine API served over a unix socket by the test --------------------------------

CONTAINERS = {
    "aaaaaaaaaaaa1111": {
        "Names": ["/web"],
        "State": {"Status": "running", "Running": True, "Restarting": False, "Health": {"Status": "healthy"}},
        "RestartCount": 0,
    },
    "bbbbbbbbbbbb2222": {
        "Names": ["/worker"],
        "State": {"Status": "restarting", "Running": True, "Restarting": True, "ExitCode": 1},
        "RestartCount": 7,
    },
}


class EngineHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def address_string(self):
        return "unix"

    def _json(self, code, value):
        body = json.dumps(value).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        if self.path.startswith("/containers/json"):
            self._json(
                200, [{"Id": cid, "Names": c["Names"], "State": c["State"]["Status"]} for cid, c in CONTAINERS.items()]
            )
            return
        parts = self.path.split("/")
        if len(parts) == 4 and parts[1] == "containers" and parts[3] == "json" and parts[2] in CONTAINERS:
            self._json(200, {"Id": parts[2], **CONTAINERS[parts[2]]})
            return
        self._json(404, {"message": "No such container"})


class UnixEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def docker_engine(tmp_path):
    path = str(tmp_path / "docker.sock")
    server = UnixEngine(path, EngineHandler)
    server.requests = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, f"unix://{path}"
    server.shutdown()
    server.server_close()


def test_docker_healthy_container_ok_and_restarting_container_critical(sqlite_store, docker_engine):
    server, host = docker_engine
    result, targets = check(
        sqlite_store,
        [
            {"name": "web", "type": "docker", "docker_host": host},
            {"name": "worker", "type": "docker", "docker_host": host},
            {"name": "ghost", "type": "docker", "docker_host": host},
        ],
    )
    assert targets["web"]["status"] == "ok"
    assert targets["web"]["detail"].startswith("web running (healthy)")
    assert targets["worker"]["status"] == "critical"
    assert "restarting" in targets["worker"]["detail"] and "7 restarts" in targets["worker"]["detail"]
    assert targets["worker"]["data"]["restart_count"] == 7
    assert targets["ghost"]["status"] == "critical"
    assert "no container named 'ghost'" in targets["ghost"]["detail"]
    assert server.requests.count("/containers/json?all=1") == 1  # listed once per engine per run
    assert result["outcome"] == "critical"


def test_docker_restart_count_growth_warns_on_next_run(sqlite_store, docker_engine):
    _, host = docker_engine
    checks = [{"name": "web", "type": "docker", "docker_host": host}]
    check(sqlite_store, checks)
    CONTAINERS["aaaaaaaaaaaa1111"]["RestartCount"] = 2
    try:
        _, targets = check(sqlite_store, checks)
    finally:
        CONTAINERS["aaaaaaaaaaaa1111"]["RestartCount"] = 0
    assert targets["web"]["status"] == "warning"
    assert "2 since last check" in targets["web"]["detail"]


def test_docker_without_engine_says_no_engine_reachable(sqlite_store, tmp_path):
    host = f"unix://{tmp_path}/absent.sock"
    result = run_handler(
        sqlite_store,
        "health.check",
        {"services": [], "docker_host": host, "checks": [{"name": "web", "type": "docker"}]},
    )
    assert result["outcome"] == "critical"
    assert result["targets"][0]["detail"].startswith(f"no Docker engine reachable at {host}")


# --- processes, TCP, disk, memory, load ---------------------------------------------------------


def test_process_by_pidfile_running_restarted_and_gone(sqlite_store, tmp_path):
    pidfile = tmp_path / "worker.pid"
    checks = [{"name": "worker", "type": "process", "pidfile": str(pidfile)}]
    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    second = None
    try:
        pidfile.write_text(f"{first.pid}\n")
        _, targets = check(sqlite_store, checks)
        assert targets["worker"]["status"] == "ok"
        assert f"pid {first.pid}" in targets["worker"]["detail"]
        first.kill()
        first.wait()
        second = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        pidfile.write_text(f"{second.pid}\n")
        _, targets = check(sqlite_store, checks)
        assert targets["worker"]["status"] == "warning"
        assert f"restarted since last check (pid {first.pid} -> {second.pid})" in targets["worker"]["detail"]
        assert targets["worker"]["data"]["restarts"] == 1
        _, targets = check(sqlite_store, checks)
        assert targets["worker"]["status"] == "ok"
        assert targets["worker"]["data"]["restarts"] == 1
        second.kill()
        second.wait()
        _, targets = check(sqlite_store, checks)
        assert targets["worker"]["status"] == "critical"
        assert f"pid {second.pid} from {pidfile} is not running" == targets["worker"]["detail"]
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_process_by_cmdline_regex_and_missing_pidfile(sqlite_store, tmp_path):
    marker = f"upkeep-health-marker-{os.getpid()}"
    proc = subprocess.Popen([sys.executable, "-c", "import time, sys; time.sleep(60)", marker])
    try:
        _, targets = check(
            sqlite_store,
            [
                {"name": "marked", "type": "process", "cmdline": marker},
                {"name": "two", "type": "process", "cmdline": marker, "min_count": 2},
                {"name": "nofile", "type": "process", "pidfile": str(tmp_path / "none.pid")},
            ],
        )
    finally:
        proc.kill()
        proc.wait()
    assert targets["marked"]["status"] == "ok"
    assert targets["marked"]["data"]["pids"] == [proc.pid]
    assert targets["two"]["status"] == "critical"
    assert targets["nofile"]["status"] == "critical"
    assert "does not exist" in targets["nofile"]["detail"]


def test_tcp_open_port_ok_and_closed_port_critical(sqlite_store):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        _, targets = check(
            sqlite_store,
            [
                {"name": "open", "type": "tcp", "port": listener.getsockname()[1]},
                {"name": "closed", "type": "tcp", "port": free_port()},
            ],
        )
    finally:
        listener.close()
    assert targets["open"]["status"] == "ok" and targets["open"]["latency_ms"] is not None
    assert targets["closed"]["status"] == "critical"
    assert "cannot connect to 127.0.0.1" in targets["closed"]["detail"]


def test_disk_thresholds_judge_a_real_path(sqlite_store, tmp_path):
    _, targets = check(
        sqlite_store,
        [
            {"name": "default", "type": "disk", "path": str(tmp_path), "warn_percent": 100, "critical_percent": 100},
            {"name": "tight", "type": "disk", "path": str(tmp_path), "warn_percent": 0, "critical_percent": 100},
            {"name": "minfree", "type": "disk", "path": str(tmp_path), "min_free": "1000000T"},
            {"name": "absent", "type": "disk", "path": str(tmp_path / "nope")},
        ],
    )
    assert targets["default"]["status"] == "ok"
    assert targets["tight"]["status"] == "warning"
    assert targets["tight"]["data"]["total"] == shutil.disk_usage(tmp_path).total
    assert targets["tight"]["detail"].startswith(f"{tmp_path}: ")
    assert targets["minfree"]["status"] == "critical"
    assert "below min_free" in targets["minfree"]["detail"]
    assert targets["absent"]["status"] == "critical"


def test_memory_and_load_thresholds(sqlite_store):
    _, targets = check(
        sqlite_store,
        [
            {"name": "mem", "type": "memory"},
            {"name": "mem-tight", "type": "memory", "warn_percent": 0, "critical_percent": 100},
            {"name": "load", "type": "load", "warn_per_core": {}, "critical_per_core": {}},
            {"name": "load-tight", "type": "load", "warn_per_core": {"load1": 0, "load15": 0}, "critical_per_core": {}},
        ],
    )
    assert targets["mem"]["data"]["memory"]["total"] > 0
    assert targets["mem-tight"]["status"] == "warning"
    assert targets["load"]["status"] == "ok"
    assert targets["load-tight"]["status"] == "warning"
    assert targets["load"]["data"]["cores"] >= 1


# --- PM2 and systemd: real tools where present, recorded output otherwise ----------------------

JLIST = json.dumps(
    [
        {"name": "meta-chat-api", "pm_id": 0, "pm2_env": {"status": "online", "restart_time": 3, "pm_uptime": 1000}},
        {"name": "meta-chat-api", "pm_id": 1, "pm2_env": {"status": "online", "restart_time": 1, "pm_uptime": 1000}},
        {"name": "worker", "pm_id": 2, "pm2_env": {"status": "errored", "restart_time": 15}},
    ]
)


def test_pm2_jlist_judgement():
    apps = pm2.parse_jlist("[PM2] Spawning PM2 daemon\n" + JLIST)
    api = pm2.Pm2Target(type="pm2", app="meta-chat-api", max_restarts=5)
    result = pm2.evaluate(apps, api, "api", {}, now=61)
    assert result.status == "ok" and "2/2 online" in result.detail and result.state == {"restart_time": 4}
    grown = pm2.evaluate(apps, api, "api", {"restart_time": 2}, now=61)
    assert grown.status == "warning" and "2 restart(s) since last check" in grown.detail
    worker = pm2.evaluate(apps, pm2.Pm2Target(type="pm2"), "worker", {})
    assert worker.status == "critical" and "not online: 2:errored" in worker.detail
    missing = pm2.evaluate(apps, pm2.Pm2Target(type="pm2"), "nope", {})
    assert missing.status == "critical" and "known: meta-chat-api, worker" in missing.detail


@pytest.mark.skipif(shutil.which("pm2") is not None, reason="pm2 is installed here")
def test_pm2_target_without_pm2_says_so(sqlite_store):
    _, targets = check(sqlite_store, [{"name": "api", "type": "pm2"}])
    assert targets["api"]["status"] == "critical"
    assert "pm2 is not on PATH" in targets["api"]["detail"]


def test_systemd_show_judgement_and_real_systemctl(sqlite_store):
    props = systemd.parse_show("ActiveState=active\nSubState=running\nNRestarts=2\nLoadState=loaded\n")
    assert systemd.evaluate(props, "nginx.service", "nginx", {}).status == "ok"
    assert systemd.evaluate(props, "nginx.service", "nginx", {"restarts": 1}).status == "warning"
    failed = systemd.parse_show("ActiveState=failed\nSubState=failed\nNRestarts=0\nLoadState=loaded")
    assert systemd.evaluate(failed, "nginx.service", "nginx", {}).status == "critical"
    if shutil.which("systemctl") is None:
        pytest.skip("systemctl is not installed")
    _, targets = check(sqlite_store, [{"name": "nope", "type": "systemd", "unit": "upkeep-no-such.service"}])
    assert targets["nope"]["status"] == "critical"  # not found, or no systemd running (containers)
    assert "upkeep-no-such.service" in targets["nope"]["detail"]


def test_check_env_previous_state_is_a_copy():
    env = CheckEnv(now=None, previous={"x": {"state": {"restarts": 1}}})  # type: ignore[arg-type]
    env.previous_state("x")["restarts"] = 5
    assert env.previous["x"]["state"]["restarts"] == 1


def test_a_pidfile_that_holds_something_else_is_never_echoed_into_the_result(sqlite_store, tmp_path):
    """Reproduction: a process check pointed at .upkeep/session.key echoed its first 40 characters."""
    secret = tmp_path / "session.key"
    secret.write_text("5f3c9a0d1e2b4c6f8a7d9e0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d\n")
    check = {"name": "x", "type": "process", "pidfile": str(secret)}
    result = run_handler(sqlite_store, "health.check", {"services": [], "checks": [check]})
    (target,) = result["targets"]
    assert target["status"] == "critical" and "holds no pid" in target["detail"]
    events = events_of(sqlite_store, result["_run_id"])
    assert "5f3c9a0d" not in json.dumps(result) and "5f3c9a0d" not in json.dumps(events)

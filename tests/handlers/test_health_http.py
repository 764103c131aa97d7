"""health.check against real HTTP(S) servers on loopback (stdlib ThreadingHTTPServer)."""

from __future__ import annotations

import json
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support.contexts import run_handler
from support.servers import free_port
from upkeep.clock import FakeClock
from upkeep.errors import ConfigError, UserError
from upkeep.handlers.health.check import KEY_PREFIX, summarize_health_records
from upkeep.store.records import Records


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        state = self.server.state  # type: ignore[attr-defined]
        if self.path == "/ok":
            self._send(200, b'{"status":"healthy","checks":[{"db":"up"}],"uptime":42}')
        elif self.path == "/error":
            self._send(500, b'{"status":"healthy"}')
        elif self.path == "/slow":
            time.sleep(0.3)
            self._send(200, b'{"status":"healthy"}')
        elif self.path == "/unhealthy":
            self._send(200, b'{"status":"unhealthy"}')
        elif self.path == "/toggle":
            self._send(state["toggle"], b"toggle")
        elif self.path == "/flaky":  # fails every other request
            state["flaky"] = state.get("flaky", 0) + 1
            self._send(500 if state["flaky"] % 2 else 200, b"flaky")
        elif self.path == "/auth":
            self._send(200 if self.headers.get("X-Token") == "abc" else 401, b"auth")
        else:
            self._send(404, b"not found", "text/plain")


def _serve(server: ThreadingHTTPServer):
    server.state = {"toggle": 200}  # type: ignore[attr-defined]
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture(scope="module")
def http_server():
    server = _serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _self_signed(directory, days: float) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"cert{days}.pem", directory / f"key{days}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def tls_servers(tmp_path_factory):
    """Two HTTPS servers: certificate expiring in 3 days and in 20 days."""
    directory = tmp_path_factory.mktemp("tls")
    servers = {}
    for days in (3, 20):
        cert, key = _self_signed(directory, days)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        servers[days] = _serve(server)
    yield {days: f"https://localhost:{s.server_address[1]}" for days, s in servers.items()}
    for server in servers.values():
        server.shutdown()
        server.server_close()


def check(store, checks, **config):
    result = run_handler(store, "health.check", {"services": [], "checks": checks, **config})
    return result, {t["name"]: t for t in result["targets"]}


def test_http_200_is_ok_and_500_is_critical(sqlite_store, http_server):
    _, base = http_server
    result, targets = check(
        sqlite_store,
        [
            {"name": "api", "type": "http", "url": f"{base}/ok"},
            {"name": "broken", "type": "http", "url": f"{base}/error"},
        ],
    )
    assert targets["api"]["status"] == "ok"
    assert targets["api"]["data"]["http_status"] == 200
    assert targets["api"]["latency_ms"] > 0
    assert targets["broken"]["status"] == "critical"
    assert "HTTP 500" in targets["broken"]["detail"]
    assert result["outcome"] == "critical"
    assert result["summary"].startswith("2 targets: 1 ok, 1 critical (broken: HTTP 500")
    assert result["findings"] == [
        {"severity": "critical", "target": "broken", "kind": "http", "message": targets["broken"]["detail"]}
    ]


def test_unhealthy_body_fails_jsonpath_healthy_condition(sqlite_store, http_server):
    _, base = http_server
    healthy = [{"jsonpath": '$.status == "healthy"'}]
    _, targets = check(
        sqlite_store,
        [
            {"name": "good", "type": "http", "url": f"{base}/ok", "expect_body": healthy},
            {"name": "bad", "type": "http", "url": f"{base}/unhealthy", "expect_body": healthy},
            {"name": "substring", "type": "http", "url": f"{base}/unhealthy", "expect_body": [{"contains": "healthy"}]},
            {
                "name": "regex",
                "type": "http",
                "url": f"{base}/unhealthy",
                "expect_body": [{"regex": r'"status"\s*:\s*"healthy"'}],
            },
            {
                "name": "nested",
                "type": "http",
                "url": f"{base}/ok",
                "expect_body": [{"jsonpath": '$.checks[0].db in ["up", "degraded"]'}, {"jsonpath": "$.uptime > 10"}],
            },
        ],
    )
    assert targets["good"]["status"] == "ok"
    assert targets["bad"]["status"] == "critical"
    assert '$.status is "unhealthy", expected == "healthy"' in targets["bad"]["detail"]
    # `contains` is documented as a substring test: it cannot tell "unhealthy" from "healthy".
    assert targets["substring"]["status"] == "ok"
    assert targets["regex"]["status"] == "critical"
    assert targets["nested"]["status"] == "ok"


def test_500_with_healthy_body_is_still_critical(sqlite_store, http_server):
    _, base = http_server
    _, targets = check(
        sqlite_store,
        [
            {
                "name": "api",
                "type": "http",
                "url": f"{base}/error",
                "expect_body": [{"jsonpath": '$.status == "healthy"'}],
            }
        ],
    )
    assert targets["api"]["status"] == "critical"


def test_expected_status_list_and_ranges(sqlite_store, http_server):
    _, base = http_server
    _, targets = check(
        sqlite_store,
        [
            {"name": "listed", "type": "http", "url": f"{base}/error", "expect_status": [500, 503]},
            {"name": "range", "type": "http", "url": f"{base}/missing", "expect_status": ["200-499"]},
            {"name": "class", "type": "http", "url": f"{base}/missing", "expect_status": ["2xx", "3xx"]},
        ],
    )
    assert targets["listed"]["status"] == "ok"
    assert targets["range"]["status"] == "ok"
    assert targets["class"]["status"] == "critical"
    assert "expected 2xx, 3xx" in targets["class"]["detail"]


def test_slow_response_crosses_response_time_thresholds(sqlite_store, http_server):
    _, base = http_server
    _, targets = check(
        sqlite_store,
        [
            {"name": "warn", "type": "http", "url": f"{base}/slow", "warn_ms": 100},
            {"name": "crit", "type": "http", "url": f"{base}/slow", "warn_ms": 50, "critical_ms": 100},
            {"name": "timeout", "type": "http", "url": f"{base}/slow", "timeout": 0.05},
        ],
    )
    assert targets["warn"]["status"] == "warning"
    assert "slow" in targets["warn"]["detail"]
    assert targets["crit"]["status"] == "critical"
    assert targets["timeout"]["status"] == "critical"
    assert "timed out" in targets["timeout"]["detail"]


def test_certificate_expiry_read_from_self_signed_servers(sqlite_store, tls_servers):
    _, targets = check(
        sqlite_store,
        [
            {"name": "soon", "type": "http", "url": f"{tls_servers[3]}/ok", "verify_tls": False},
            {"name": "month", "type": "http", "url": f"{tls_servers[20]}/ok", "verify_tls": False},
            {
                "name": "relaxed",
                "type": "http",
                "url": f"{tls_servers[20]}/ok",
                "verify_tls": False,
                "cert_warn_days": 10,
            },
        ],
    )
    assert targets["soon"]["status"] == "critical"
    assert "certificate expires in" in targets["soon"]["detail"]
    assert 2 < targets["soon"]["data"]["cert_days_left"] <= 3
    assert targets["month"]["status"] == "warning"
    assert 19 < targets["month"]["data"]["cert_days_left"] <= 20
    assert targets["relaxed"]["status"] == "ok"


def test_verify_tls_rejects_self_signed_certificate(sqlite_store, tls_servers):
    _, targets = check(sqlite_store, [{"name": "strict", "type": "http", "url": f"{tls_servers[20]}/ok"}])
    assert targets["strict"]["status"] == "critical"
    assert "TLS verification failed" in targets["strict"]["detail"]
    assert "verify_tls: false" in targets["strict"]["detail"]


def test_refused_connection_is_a_critical_target_not_an_error(sqlite_store):
    url = f"http://127.0.0.1:{free_port()}/health"
    result, targets = check(
        sqlite_store, [{"name": "down", "type": "http", "url": url, "retries": 1, "retry_delay": 0}]
    )
    assert result["outcome"] == "critical"
    assert "cannot connect" in targets["down"]["detail"]


def test_failure_threshold_damps_a_blip_and_success_threshold_delays_recovery(sqlite_store, http_server):
    server, base = http_server
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    config = {
        "services": [],
        "failure_threshold": 2,
        "success_threshold": 2,
        "checks": [{"name": "flappy", "type": "http", "url": f"{base}/toggle"}],
    }

    def run():
        clock.advance(60)
        result = run_handler(sqlite_store, "health.check", config, clock=clock)
        return result["targets"][0], Records(sqlite_store, "health").get(KEY_PREFIX + "flappy")

    try:
        target, record = run()
        assert (target["status"], record["consecutive_successes"]) == ("ok", 1)
        server.state["toggle"] = 500
        target, record = run()
        assert target["status"] == "warning"
        assert "failure 1 of 2 before critical" in target["detail"]
        assert record["observed"] == "critical" and record["consecutive_failures"] == 1
        target, record = run()
        assert target["status"] == "critical"
        assert record["since"] == clock.now().isoformat()
        server.state["toggle"] = 200
        target, record = run()
        assert target["status"] == "critical"
        assert "recovering: 1 of 2 successes" in target["detail"]
        target, record = run()
        assert target["status"] == "ok"
        assert record["previous_status"] == "critical"
        assert record["checks"] == 5
        assert record["last_failure"] == (clock.now() - timedelta(seconds=120)).isoformat()
    finally:
        server.state["toggle"] = 200


def test_per_target_threshold_overrides_task_default(sqlite_store, http_server):
    _, base = http_server
    checks = [{"name": "strict", "type": "http", "url": f"{base}/error", "failure_threshold": 1}]
    result = run_handler(sqlite_store, "health.check", {"services": [], "failure_threshold": 3, "checks": checks})
    assert result["targets"][0]["status"] == "critical"


def test_inventory_services_are_checked_and_summarised_from_records(sqlite_store, http_server):
    _, base = http_server
    targets = {
        "services": {
            "api": {"type": "http", "url": f"{base}/ok", "expect_body": [{"jsonpath": '$.status == "healthy"'}]},
            "admin": {"type": "http", "url": f"{base}/error"},
            "other": {"type": "http", "url": f"{base}/unhealthy"},
        }
    }
    result = run_handler(sqlite_store, "health.check", {"services": ["api", "admin"]}, targets=targets)
    assert [t["name"] for t in result["targets"]] == ["api", "admin"]
    result = run_handler(sqlite_store, "health.check", {}, targets=targets)
    assert sorted(t["name"] for t in result["targets"]) == ["admin", "api", "other"]
    items = Records(sqlite_store, "health").items(KEY_PREFIX)
    summary = summarize_health_records(items, now=datetime.now(UTC))
    assert summary["total"] == 3
    assert summary["counts"] == {"ok": 2, "warning": 0, "critical": 1}
    assert summary["outcome"] == "critical"
    assert summary["problems"][0]["name"] == "admin"
    assert summary["summary"].startswith("3 targets: 2 ok, 1 critical (admin: HTTP 500")
    assert summary["stale"] == []
    later = summarize_health_records(items, now=datetime.now(UTC) + timedelta(days=2))
    assert sorted(later["stale"]) == ["admin", "api", "other"]


def test_bad_targets_are_config_errors_naming_the_field(sqlite_store, http_server):
    _, base = http_server
    with pytest.raises(UserError, match="unknown services target 'nope'"):
        run_handler(sqlite_store, "health.check", {"services": ["nope"]}, targets={"services": {}})
    bad = {"services": {"api": {"type": "http", "url": f"{base}/ok", "expect_body": [{"jsonpath": "status"}]}}}
    with pytest.raises(ConfigError, match=r"targets\.services\.api\.http\.expect_body"):
        run_handler(sqlite_store, "health.check", {}, targets=bad)
    with pytest.raises(ConfigError, match="two health targets"):
        check(sqlite_store, [{"name": "x", "type": "tcp", "port": 1}, {"name": "x", "type": "tcp", "port": 2}])
    with pytest.raises(ConfigError, match="invalid config for health.check"):
        check(sqlite_store, [{"type": "ftp", "url": "ftp://x"}])


def test_secret_in_url_is_not_shown(sqlite_store, monkeypatch):
    monkeypatch.setenv("HC_TEST_PASSWORD", "s3cr3t-value")
    port = free_port()
    targets = {"services": {"db": {"type": "http", "url": f"http://user:${{env:HC_TEST_PASSWORD}}@127.0.0.1:{port}/"}}}
    result = run_handler(sqlite_store, "health.check", {}, targets=targets)
    assert result["outcome"] == "critical"
    assert "s3cr3t-value" not in json.dumps(result)


def test_retries_absorb_a_single_failed_request_and_headers_are_sent(sqlite_store, http_server):
    server, base = http_server
    server.state["flaky"] = 0
    _, targets = check(
        sqlite_store,
        [
            {"name": "flaky", "type": "http", "url": f"{base}/flaky", "retries": 1, "retry_delay": 0},
            {"name": "auth", "type": "http", "url": f"{base}/auth", "headers": {"X-Token": "abc"}},
            {"name": "noauth", "type": "http", "url": f"{base}/auth"},
        ],
    )
    assert server.state["flaky"] == 2  # first attempt 500, the retry 200
    assert targets["flaky"]["status"] == "ok"
    assert targets["auth"]["status"] == "ok"
    assert targets["noauth"]["status"] == "critical" and "HTTP 401" in targets["noauth"]["detail"]

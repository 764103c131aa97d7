"""security.audit against a local TLS server, upkeep's own keys (controllable clock), an application key
table on a real PostgreSQL, pip-audit/npm audit outputs (fixtures), world-writable files and open ports."""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support.contexts import run_handler
from upkeep.app.run_services import RunServices
from upkeep.auth import create_key
from upkeep.clock import FakeClock
from upkeep.handlers.audit.vulnerabilities import parse_npm_audit, parse_pip_audit
from upkeep.settings import Settings

FIXTURES = Path(__file__).parent.parent / "fixtures" / "audit"


class TlsServer:
    """Accepts TLS handshakes on 127.0.0.1 with a self-signed certificate expiring at ``not_after``."""

    def __init__(self, directory: Path, not_after: datetime):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_after - timedelta(days=90))
            .not_valid_after(not_after)
            .sign(key, hashes.SHA256())
        )
        cert_path, key_path = directory / f"{id(self)}.crt", directory / f"{id(self)}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert_path, key_path)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def tls_servers(tmp_path):
    now = datetime.now(UTC)
    servers = {days: TlsServer(tmp_path, now + timedelta(days=days)) for days in (5, 20, 200)}
    yield servers
    for server in servers.values():
        server.close()


def test_certificates_expiring_in_5_days_are_critical_and_in_20_days_warning(sqlite_store, tls_servers):
    hosts = [f"127.0.0.1:{s.port}" for s in tls_servers.values()]
    result = run_handler(sqlite_store, "security.audit", {"tls_hosts": hosts, "check_upkeep_keys": False})
    by_host = {f["item"]: f for f in result["findings"] if f["check"] == "tls"}
    assert by_host[f"127.0.0.1:{tls_servers[5].port}"]["severity"] == "critical"
    assert by_host[f"127.0.0.1:{tls_servers[20].port}"]["severity"] == "warning"
    assert f"127.0.0.1:{tls_servers[200].port}" not in by_host
    days = {c["host"]: c["days_left"] for c in result["certificates"]}
    assert 4.9 < days[f"127.0.0.1:{tls_servers[5].port}"] <= 5.0
    assert result["outcome"] == "critical"


def test_an_unreachable_tls_host_is_a_warning_not_a_crash(sqlite_store):
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    result = run_handler(
        sqlite_store,
        "security.audit",
        {"tls_hosts": [f"https://127.0.0.1:{port}/"], "tls_timeout": 2, "check_upkeep_keys": False},
    )
    assert result["findings"][0]["severity"] == "warning"
    assert "cannot read the certificate" in result["findings"][0]["message"]


def test_a_key_created_100_days_ago_is_a_warning(sqlite_store, tmp_path):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    create_key(sqlite_store, name="old-admin", role="admin", now=start)
    create_key(sqlite_store, name="fresh", role="viewer", now=start + timedelta(days=95))
    services = RunServices(sqlite_store, Settings(config=tmp_path / "upkeep.yaml"))
    clock = FakeClock(start + timedelta(days=100))
    result = run_handler(sqlite_store, "security.audit", {}, services=services, clock=clock)
    keys = [f for f in result["findings"] if f["check"] == "key_age"]
    assert [(f["item"], f["severity"]) for f in keys] == [("upkeep:old-admin", "warning")]
    assert "100 days old" in keys[0]["message"]
    assert result["outcome"] == "warning"
    clock.set(start + timedelta(days=80))
    assert run_handler(sqlite_store, "security.audit", {}, services=services, clock=clock)["outcome"] == "ok"


def test_keys_in_an_application_table_are_aged_too(sqlite_store, pg_server, pg_database):
    import psycopg

    dsn = pg_server.dsn(pg_database.rsplit("/", 1)[-1])
    start = datetime(2026, 3, 1, tzinfo=UTC)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute('CREATE TABLE admin_keys (name text, "createdAt" timestamptz)')
        conn.execute(
            "INSERT INTO admin_keys VALUES ('ci-deploy', %s), ('new', %s)", (start, start + timedelta(days=50))
        )
    url = pg_database.replace("postgresql+psycopg://", "postgresql://")
    result = run_handler(
        sqlite_store,
        "security.audit",
        {
            "check_upkeep_keys": False,
            "key_tables": [
                {"target": url, "table": "public.admin_keys", "name_column": "name", "created_column": "createdAt"}
            ],
        },
        clock=FakeClock(start + timedelta(days=100)),
    )
    assert [f["message"].split("'")[1] for f in result["findings"]] == ["ci-deploy"]


def test_pip_audit_output_is_parsed_into_findings():
    data = json.loads((FIXTURES / "pip-audit-constructed.json").read_text())
    findings, counts = parse_pip_audit(data, "warning", "requirements.txt")
    vulns = [f for f in findings if f.get("id")]
    assert counts == {"dependencies": 5, "vulnerabilities": 4, "skipped": 1}
    assert {(f["package"], f["id"]) for f in vulns} >= {("requests", "PYSEC-2018-28"), ("urllib3", "PYSEC-2019-132")}
    assert "CVE-2018-18074" in next(f["message"] for f in vulns if f["id"] == "PYSEC-2018-28")
    assert "fixed in 2.20.0" in next(f["message"] for f in vulns if f["id"] == "PYSEC-2018-28")
    assert any("could not audit 1 package" in f["message"] for f in findings)


def test_a_pip_audit_run_that_could_not_reach_its_database_is_not_reported_as_clean():
    data = json.loads((FIXTURES / "pip-audit-skipped.json").read_text())  # recorded from a real run
    findings, counts = parse_pip_audit(data)
    assert counts["vulnerabilities"] == 0 and counts["skipped"] == 5
    assert [f["severity"] for f in findings] == ["warning"]


def test_npm_audit_output_is_parsed_with_severities():
    data = json.loads((FIXTURES / "npm-audit-constructed.json").read_text())
    findings, counts = parse_npm_audit(data, "web", ["critical"])
    by_name = {f["package"]: f for f in findings}
    assert set(by_name) == {"lodash", "minimist", "mkdirp"}
    assert by_name["minimist"]["severity"] == "critical"
    assert "GHSA-xvch-5gv4-984h" in by_name["minimist"]["message"]
    assert "through minimist" in by_name["mkdirp"]["message"]
    assert "mkdirp@3.0.1 (major)" in by_name["mkdirp"]["message"]
    assert counts["critical"] == 3


def test_npm_audit_error_document_is_a_warning():
    data = json.loads((FIXTURES / "npm-audit-unreachable.json").read_text())  # recorded from a real run
    findings, _ = parse_npm_audit(data, "web")
    assert findings[0]["severity"] == "warning"
    assert "405 Method Not Allowed" in findings[0]["message"]


def _replay(tmp_path: Path, name: str, fixture: str, exit_code: int) -> str:
    """A stand-in tool that prints a recorded output and records its arguments."""
    script = tmp_path / name
    script.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/{name}.argv\ncat {FIXTURES / fixture}\nexit {exit_code}\n')
    script.chmod(0o755)
    return str(script)


def test_the_handler_runs_pip_audit_and_npm_audit_on_the_configured_projects(sqlite_store, tmp_path):
    (tmp_path / "requirements.txt").write_text("requests==2.19.0\n")
    web = tmp_path / "web"
    web.mkdir()
    (web / "package.json").write_text("{}")
    result = run_handler(
        sqlite_store,
        "security.audit",
        {
            "check_upkeep_keys": False,
            "python_projects": [str(tmp_path)],
            "npm_projects": [str(web)],
            "pip_audit_command": [_replay(tmp_path, "pip-audit", "pip-audit-constructed.json", 1)],
            "npm_command": [_replay(tmp_path, "npm", "npm-audit-constructed.json", 1)],
        },
    )
    checks = {f["check"] for f in result["findings"]}
    assert checks == {"pip_audit", "npm_audit"}
    assert result["outcome"] == "critical"
    assert f"-r {tmp_path / 'requirements.txt'}" in (tmp_path / "pip-audit.argv").read_text()
    assert (tmp_path / "npm.argv").read_text().strip() == "audit --json"


def test_world_writable_files_are_found_and_sticky_directories_are_not(sqlite_store, tmp_path):
    root = tmp_path / "srv"
    (root / "sticky").mkdir(parents=True)
    (root / "open").mkdir()
    os.chmod(root / "sticky", 0o1777)
    os.chmod(root / "open", 0o777)
    (root / "sticky" / "shared.txt").write_text("x")
    os.chmod(root / "sticky" / "shared.txt", 0o666)
    (root / "private.txt").write_text("x")
    os.chmod(root / "private.txt", 0o600)
    os.symlink("/etc/passwd", root / "link")
    result = run_handler(
        sqlite_store, "security.audit", {"world_writable_paths": [str(root)], "check_upkeep_keys": False}
    )
    items = sorted(f["item"] for f in result["findings"])
    assert items == [str(root / "open"), str(root / "sticky" / "shared.txt")]
    assert all(stat.S_IMODE(os.stat(i).st_mode) & 0o002 for i in items)


def test_listening_ports_outside_the_allow_list_are_reported(sqlite_store):
    sock = socket.create_server(("0.0.0.0", 0))
    port = sock.getsockname()[1]
    try:
        result = run_handler(sqlite_store, "security.audit", {"allowed_ports": [22], "check_upkeep_keys": False})
        ours = [f for f in result["findings"] if f["check"] == "ports" and f["port"] == port]
        assert len(ours) == 1 and ours[0]["severity"] == "warning"
        assert ours[0]["pid"] == os.getpid()
        allowed = [p["port"] for p in result["listening"]]
        result = run_handler(sqlite_store, "security.audit", {"allowed_ports": allowed, "check_upkeep_keys": False})
        assert not [f for f in result["findings"] if f["check"] == "ports" and f.get("port") == port]
    finally:
        sock.close()

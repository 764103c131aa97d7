"""Throwaway servers for tests: a PostgreSQL cluster (initdb/pg_ctl) and redis-server, on free ports.

As root (CI), PostgreSQL runs as the ``postgres`` user in a directory that user owns. With
``CI=true`` a missing server binary fails the test instead of skipping it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PG_BIN_DIRS = [
    Path("/usr/lib/postgresql/15/bin"),
    *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True),
]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_binary(name: str, search: list[Path] | None = None) -> str:
    """Path of a server binary; skip the test without it, or fail in CI."""
    for directory in search or []:
        candidate = directory / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a missing server binary is a failure)")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


@dataclass
class PostgresServer:
    """A throwaway cluster. ``url(db)`` gives a SQLAlchemy URL; ``dsn(db)`` a libpq one."""

    port: int
    base: Path
    data_dir: Path
    bin_dir: Path
    options: dict[str, str] = field(default_factory=dict)
    user: str = "postgres"
    host: str = "127.0.0.1"

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def bin(self, name: str) -> str:
        return str(self.bin_dir / name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        out = subprocess.run(
            [
                self.bin("psql"),
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.dsn(database),
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def create_database(self, name: str | None = None) -> str:
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            _as_postgres([self.bin("pg_ctl"), "-D", str(self.data_dir), *args]),
            capture_output=True,
            text=True,
            check=check,
        )

    def start(self) -> None:
        opts = " ".join(f"-c {k}={v}" for k, v in self.options.items())
        self._ctl(
            "-o",
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 {opts}",
            "-l",
            str(self.base / "server.log"),
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


DEFAULT_PG_OPTIONS = {
    "shared_preload_libraries": "pg_stat_statements",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "log_min_messages": "warning",
}


def start_postgres(options: dict[str, str] | None = None) -> PostgresServer:
    initdb = require_binary("initdb", [d for d in PG_BIN_DIRS])
    bin_dir = Path(initdb).resolve().parent
    base = Path(tempfile.mkdtemp(prefix="upkeep-pg-"))
    os.chmod(base, 0o755)
    data_dir = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    subprocess.run(
        _as_postgres(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C.UTF-8",
            ]
        ),
        check=True,
        capture_output=True,
    )
    server = PostgresServer(
        port=free_port(),
        base=base,
        data_dir=data_dir,
        bin_dir=bin_dir,
        options={**DEFAULT_PG_OPTIONS, **(options or {})},
    )
    server.start()
    return server


@dataclass
class RedisServer:
    port: int
    directory: Path
    process: subprocess.Popen | None = None
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = require_binary("redis-server")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--daemonize",
                "no",
                "--logfile",
                str(self.directory / "redis.log"),
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_redis(*extra_args: str) -> RedisServer:
    directory = Path(tempfile.mkdtemp(prefix="upkeep-redis-"))
    args = list(extra_args) or ["--save", "", "--appendonly", "no"]
    server = RedisServer(port=free_port(), directory=directory, args=args)
    server.start()
    return server


RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


@dataclass
class RabbitMQServer:
    """A throwaway RabbitMQ node with its own name, port, config and data directory."""

    port: int
    dist_port: int
    directory: Path
    node: str
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": "/var/lib/rabbitmq" if os.geteuid() == 0 else os.environ.get("HOME", "/tmp"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_CONFIG_FILE": str(self.directory / "rabbitmq.conf"),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.directory / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.directory / "pid"),
        }

    def _cmd(self, name: str, *args: str) -> list[str]:
        argv = [str(RABBITMQ_BIN / name), *args]
        return ["runuser", "-u", "rabbitmq", "--", *argv] if os.geteuid() == 0 else argv

    def start(self, timeout: float = 90.0) -> None:
        self.process = subprocess.Popen(
            self._cmd("rabbitmq-server"),
            env=self._env(),
            stdout=open(self.directory / "out.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited: see {self.directory / 'out.log'}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return
            time.sleep(0.2)
        raise TimeoutError(f"RabbitMQ did not listen on {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            subprocess.run(
                self._cmd("rabbitmqctl", "-n", self.node, "stop"),
                env=self._env(),
                capture_output=True,
                timeout=60,
                check=False,
            )
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_rabbitmq() -> RabbitMQServer:
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        require_binary("rabbitmq-server-missing")  # skips, or fails in CI
    directory = Path(tempfile.mkdtemp(prefix="upkeep-rmq-"))
    port, dist_port = free_port(), free_port()
    (directory / "enabled_plugins").write_text("[].\n")
    (directory / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{port}\nloopback_users = none\n")
    if os.geteuid() == 0:
        for path in [directory, *directory.iterdir()]:
            shutil.chown(path, "rabbitmq", "rabbitmq")
    server = RabbitMQServer(port=port, dist_port=dist_port, directory=directory, node=f"upkeep{port}@localhost")
    server.start()
    return server


@dataclass
class MariaDBServer:
    """A throwaway MariaDB: its own datadir, port and socket, run as ``mysql`` when root.

    ``root`` connects over TCP without a password (``--auth-root-authentication-method=normal``).
    """

    port: int
    base: Path
    process: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        return self.base / "mysqld.sock"

    def url(self, database: str = "", scheme: str = "mariadb") -> str:
        return f"{scheme}://root@127.0.0.1:{self.port}/{database}"

    def client(self, *args: str, database: str = "", stdin: str | None = None) -> str:
        argv = [require_binary("mariadb"), "-uroot", "-h127.0.0.1", f"-P{self.port}", "-N", "-B"]
        out = subprocess.run(
            [*argv, *args, *([database] if database else [])], input=stdin, capture_output=True, text=True
        )
        if out.returncode != 0:
            raise RuntimeError(f"mariadb client failed: {out.stderr.strip()}")
        return out.stdout.strip()

    def sql(self, sql: str, database: str = "") -> str:
        return self.client(database=database, stdin=sql)

    def create_database(self, name: str | None = None) -> str:
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self.sql(f"CREATE DATABASE `{name}`")
        return name

    def drop_database(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS `{name}`")

    def start(self) -> None:
        binary = require_binary("mariadbd", [Path("/usr/sbin")])
        argv = [
            binary,
            "--no-defaults",
            f"--datadir={self.base / 'data'}",
            f"--socket={self.socket}",
            f"--pid-file={self.base / 'mysqld.pid'}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            "--event-scheduler=ON",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M",
            "--innodb-flush-log-at-trx-commit=0",
            f"--log-error={self.base / 'error.log'}",
        ]
        if os.geteuid() == 0:
            argv.append("--user=mysql")
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(self.port, timeout=60)
        except TimeoutError:
            log = (self.base / "error.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"mariadbd did not start: {log}") from None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def start_mariadb() -> MariaDBServer:
    install = require_binary("mariadb-install-db")
    base = Path(tempfile.mkdtemp(prefix="upkeep-mariadb-"))
    os.chmod(base, 0o755)
    argv = [
        install,
        "--no-defaults",
        f"--datadir={base / 'data'}",
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
    ]
    if os.geteuid() == 0:
        shutil.chown(base, "mysql", "mysql")
        argv.append("--user=mysql")
    subprocess.run(argv, check=True, capture_output=True)
    server = MariaDBServer(port=free_port(), base=base)
    server.start()
    return server


@dataclass
class S3Server:
    """moto's S3-compatible server mode (from PyPI) on a free loopback port."""

    port: int
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test-key",
            aws_secret_access_key="test-secret",
        )

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout=30)

    def remove(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_s3() -> S3Server:
    pytest.importorskip("moto.server")
    server = S3Server(port=free_port())
    server.start()
    return server


@dataclass
class SshServer:
    """OpenSSH's sshd on loopback with its own host key; ``key`` logs in as ``user``."""

    port: int
    base: Path
    user: str
    process: subprocess.Popen | None = None

    @property
    def key(self) -> Path:
        return self.base / "client_key"

    @property
    def known_hosts(self) -> Path:
        return self.base / "known_hosts"

    def start(self) -> None:
        binary = require_binary("sshd", [Path("/usr/sbin")])
        self.process = subprocess.Popen(
            [binary, "-D", "-e", "-f", str(self.base / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.base / "sshd.log", "ab"),  # noqa: SIM115
        )
        try:
            wait_for_port(self.port, timeout=20)
        except TimeoutError:
            raise RuntimeError(f"sshd did not start: {(self.base / 'sshd.log').read_text()[-2000:]}") from None

    def remove(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.base, ignore_errors=True)


def start_sshd() -> SshServer:
    import getpass

    keygen = require_binary("ssh-keygen")
    require_binary("sshd", [Path("/usr/sbin")])
    base = Path(tempfile.mkdtemp(prefix="upkeep-sshd-"))
    for name in ("host_key", "client_key"):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(base / name)], check=True)
    (base / "authorized_keys").write_text((base / "client_key.pub").read_text())
    os.chmod(base / "authorized_keys", 0o600)
    port = free_port()
    (base / "known_hosts").write_text(f"[127.0.0.1]:{port} {(base / 'host_key.pub').read_text()}")
    (base / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {base / 'host_key'}\nPidFile {base / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {base / 'authorized_keys'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
        "Subsystem sftp internal-sftp\nLogLevel ERROR\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    server = SshServer(port=port, base=base, user=getpass.getuser())
    server.start()
    return server

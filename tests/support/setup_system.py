"""System packages the test suite needs, installed when absent (run by `make test`).

Debian packages through apt-get, as root, and through ``npm ci`` the npm packages of
``benchmarks/loggers`` (pino, the real logger whose output the log-analysis tests read) and of
``tests/web/a11y`` (axe-core, which the browser tests run on every page). Without root or
apt-get, it says what is missing and the tests that need it skip (or fail under CI=true).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# folder with a package-lock.json -> the package whose presence says it is installed
NPM = {ROOT / "benchmarks" / "loggers": "pino", ROOT / "tests" / "web" / "a11y": "axe-core"}

# binary -> Debian package providing it
NEEDED = {
    "chromium": "chromium",
    "logrotate": "logrotate",
    "zstd": "zstd",
    "redis-server": "redis-server",
    "redis-check-rdb": "redis-tools",
    "pg_ctl": "postgresql",
    "mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
    "mariadb-dump": "mariadb-client",
    "sshd": "openssh-server",
    "nginx": "nginx",
    "apache2": "apache2",
    "node": "nodejs",
    "npm": "npm",
}
PG_BINARIES = ("/usr/lib/postgresql/15/bin/pg_ctl",)
SBIN = ("/usr/sbin", "/usr/local/sbin")  # daemons, off a non-root PATH


def missing() -> list[str]:
    out = []
    for binary, package in NEEDED.items():
        if binary == "pg_ctl" and any(os.path.exists(p) for p in PG_BINARIES):
            continue
        found = shutil.which(binary) or any(os.path.exists(os.path.join(d, binary)) for d in SBIN)
        if not found and package not in out:
            out.append(package)
    return out


def main() -> int:
    install_debian(missing())
    for folder, package in NPM.items():
        install_npm(folder, package)
    return 0


def install_npm(folder: Path, package: str) -> None:
    """``npm ci`` from the committed lock file, when ``package`` is not there yet."""
    if (folder / "node_modules" / package).is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        print(f"setup: npm missing; the tests that need {package} will skip", file=sys.stderr)
        return
    print(f"setup: npm ci in {folder.relative_to(ROOT)}", flush=True)
    result = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=folder, check=False)
    if result.returncode != 0:
        print(f"setup: npm ci in {folder.relative_to(ROOT)} failed", file=sys.stderr)


def install_debian(packages: list[str]) -> None:
    if not packages:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(
            f"setup: missing system packages {' '.join(packages)} (install them with apt-get)",
            file=sys.stderr,
        )
        return
    print(f"setup: installing {' '.join(packages)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    result = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], check=False, env=env
    )
    if result.returncode != 0:
        print(f"setup: apt-get install {' '.join(packages)} failed", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

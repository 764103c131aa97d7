"""Loading the handler registry must not import the heavy libraries the handlers use when they run.

Every process that resolves a task type (workers, the scheduler, the API) loads all handler
modules; a module-level ``import psycopg`` (or aiohttp, duckdb, ...) there costs every one of them
tens of MB. Handlers import these inside the functions that use them.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("psycopg", "aiohttp", "httpx", "duckdb", "zstandard", "cryptography", "redis")

SCRIPT = f"""
import json, sys
from upkeep.engine.registry import REGISTRY
REGISTRY.ensure_loaded()
print(json.dumps({{
    "handlers": REGISTRY.names(),
    "modules": sorted(m for m in sys.modules if m.startswith("upkeep.handlers.")),
    "heavy": sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r}),
}}))
"""


def test_loading_the_registry_imports_no_heavy_library(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    # the registry really was loaded: every built-in handler module, so no import was skipped
    from upkeep.handlers import builtin_modules

    for module in builtin_modules():
        assert f"upkeep.handlers.{module}" in loaded["modules"]
    assert {"db.vacuum", "backup.create", "health.check", "logs.analyze", "docker.cleanup"} <= set(loaded["handlers"])
    heavy = sorted({m.split(".")[0] for m in loaded["heavy"]})
    assert heavy == [], f"loading the handler registry imported {heavy}; import them where they are used"

"""system.resources on the real machine."""

from __future__ import annotations

import os
import shutil

import pytest

import upkeep.handlers.system.resources  # noqa: F401  (registers system.resources)
from support.contexts import run_handler


def test_resources_report_disk_memory_cpu_load_and_top_processes(sqlite_store, tmp_path):
    result = run_handler(
        sqlite_store,
        "system.resources",
        {
            "paths": ["/", str(tmp_path)],
            "cpu_sample_seconds": 0.1,
            "top": 3,
            "disk_warn_percent": 100,
            "disk_critical_percent": 100,
            "memory_warn_percent": 100,
            "memory_critical_percent": 100,
            "load_warn_per_core": {},
            "load_critical_per_core": {},
        },
    )
    assert result["outcome"] == "ok", result["findings"]
    assert [d["path"] for d in result["disks"]] == ["/", str(tmp_path)]
    assert result["disks"][1]["total"] == shutil.disk_usage(tmp_path).total
    assert result["memory"]["total"] > 0 and 0 <= result["memory"]["used_percent"] <= 100
    assert len(result["cpu"]["per_cpu"]) == result["cpu"]["cores"]
    assert len(result["top_cpu"]) == 3 and len(result["top_rss"]) == 3
    rss = [p["rss"] for p in result["top_rss"]]
    assert rss == sorted(rss, reverse=True)
    assert os.getpid() in {p["pid"] for p in result["top_rss"]} or rss[-1] >= 0
    assert result["summary"].startswith("disk / ")


def test_thresholds_set_the_outcome(sqlite_store, tmp_path):
    result = run_handler(
        sqlite_store,
        "system.resources",
        {
            "paths": [str(tmp_path)],
            "cpu_sample_seconds": 0.1,
            "top": 1,
            "disk_warn_percent": 0,
            "disk_critical_percent": 100,
            "memory_warn_percent": 100,
            "memory_critical_percent": 100,
            "load_warn_per_core": {},
            "load_critical_per_core": {},
        },
    )
    assert result["outcome"] == "warning"
    assert [f["item"] for f in result["findings"]] == [f"disk:{tmp_path}"]
    result = run_handler(
        sqlite_store,
        "system.resources",
        {"paths": [str(tmp_path / "missing")], "cpu_sample_seconds": 0.1, "memory_warn_percent": 0},
    )
    assert result["outcome"] == "critical"
    assert {f["item"] for f in result["findings"]} >= {str(tmp_path / "missing"), "memory"}


def test_unknown_config_field_is_rejected(sqlite_store):
    from upkeep.errors import ConfigError

    with pytest.raises(ConfigError, match="disk_warn"):
        run_handler(sqlite_store, "system.resources", {"disk_warn": 50})

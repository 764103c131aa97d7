"""The static index of built-in handler names: right against the real registrations, and what it saves.

``upkeep run logs.analyze`` resolves one name; the index lets it import that handler's module alone
instead of every handler (and every plug-in's entry point). Each check runs in a fresh interpreter,
since the test process has long imported the handlers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def run_python(script: str, cwd: Path, extra_path: Path | None = None) -> dict:
    env_path = [str(SRC)] + ([str(extra_path)] if extra_path else [])
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PYTHONPATH": ":".join(env_path), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_index_names_the_module_of_every_builtin_handler_and_alias(tmp_path):
    """Every module under ``upkeep.handlers`` is imported, whatever its name: a handler registered in a
    module the index does not list shows up here."""
    loaded = run_python(
        """
        import importlib, json, pkgutil
        import upkeep.handlers
        from upkeep.handlers import BUILTIN_MODULES
        from upkeep.engine.registry import REGISTRY
        for info in pkgutil.walk_packages(upkeep.handlers.__path__, "upkeep.handlers."):
            importlib.import_module(info.name)
        real = {}
        for spec in REGISTRY._handlers.values():
            for name in (spec.name, *spec.aliases):
                real[name] = spec.module.removeprefix("upkeep.handlers.")
        print(json.dumps({"real": real, "index": BUILTIN_MODULES}))
        """,
        tmp_path,
    )
    assert len(loaded["real"]) > 40
    assert loaded["index"] == loaded["real"]


def test_resolving_a_builtin_name_imports_that_handler_module_alone(tmp_path):
    loaded = run_python(
        """
        import json, sys
        from upkeep.engine.registry import REGISTRY
        from upkeep.handlers import builtin_modules
        spec, alias = REGISTRY.resolve("logs.analyse")
        print(json.dumps({
            "name": spec.name, "alias": alias,
            "handler_modules": sorted(m for m in sys.modules
                                      if m.removeprefix("upkeep.handlers.") in builtin_modules()),
        }))
        """,
        tmp_path,
    )
    assert (loaded["name"], loaded["alias"]) == ("logs.analyze", "logs.analyse")
    assert loaded["handler_modules"] == ["upkeep.handlers.logs.analyze"]


def test_a_name_that_is_not_builtin_still_loads_the_plugins_entry_points(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "upkeep_hello.py").write_text(
        textwrap.dedent(
            """
            from upkeep.engine.registry import handler

            @handler("hello.world", aliases=["hello.there"])
            def hello(ctx, config):
                return {"summary": "hello"}
            """
        )
    )
    dist = plugins / "upkeep_hello-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: upkeep-hello\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[upkeep.handlers]\nhello = upkeep_hello\n")
    loaded = run_python(
        """
        import json
        from upkeep.engine.registry import REGISTRY
        spec, alias = REGISTRY.resolve("hello.there")
        print(json.dumps({"name": spec.name, "alias": alias, "module": spec.module, "all": REGISTRY.names()}))
        """,
        tmp_path,
        extra_path=plugins,
    )
    assert (loaded["name"], loaded["alias"], loaded["module"]) == ("hello.world", "hello.there", "upkeep_hello")
    assert "logs.analyze" in loaded["all"]  # the built-ins are there too once everything loaded


def test_upkeep_run_of_one_handler_imports_no_other_handler(tmp_path):
    """The foreground run forks its worker from the CLI process: what the CLI imported is what the
    worker starts with, so no other handler module may be among it."""
    (tmp_path / "upkeep.yaml").write_text("tasks: []\n")
    loaded = run_python(
        """
        import json, sys
        from upkeep.cli.main import main
        from upkeep.handlers import builtin_modules
        try:
            main(["run", "debug.noop"])
        except SystemExit as exc:
            code = exc.code
        print(json.dumps({
            "code": code,
            "handler_modules": sorted(m for m in sys.modules
                                      if m.removeprefix("upkeep.handlers.") in builtin_modules()),
        }))
        """,
        tmp_path,
    )
    assert loaded["code"] == 0
    assert loaded["handler_modules"] == ["upkeep.handlers.debug"]


def test_kind_index_names_the_module_that_declares_every_builtin_kind_of_target(tmp_path):
    loaded = run_python(
        """
        import json
        from upkeep.handlers import BUILTIN_KINDS, load_builtin
        from upkeep.engine.registry import REGISTRY
        real = {}
        for module in sorted(set(BUILTIN_KINDS.values())):  # which kinds each module declares alone
            before = set(REGISTRY._kinds)
            __import__(f"upkeep.handlers.{module}")
            real.update({kind: module for kind in set(REGISTRY._kinds) - before})
        load_builtin()
        print(json.dumps({"real": real, "all": sorted(REGISTRY._kinds), "index": BUILTIN_KINDS}))
        """,
        tmp_path,
    )
    assert loaded["index"] == loaded["real"]
    assert loaded["all"] == sorted(loaded["index"])  # no handler module declares a kind the index misses


def test_checking_a_files_targets_imports_the_modules_of_their_kinds_alone(tmp_path):
    (tmp_path / "upkeep.yaml").write_text("targets:\n  logs:\n    api: {paths: [/var/log/api.log]}\ntasks: []\n")
    loaded = run_python(
        """
        import json, sys
        from upkeep.config_file import load_config, validate_targets
        from upkeep.handlers import builtin_modules
        validate_targets(load_config("upkeep.yaml"))
        print(json.dumps({
            "handler_modules": sorted(m for m in sys.modules
                                      if m.removeprefix("upkeep.handlers.") in builtin_modules()),
        }))
        """,
        tmp_path,
    )
    assert "upkeep.handlers.logs.rules" in loaded["handler_modules"]
    for other in ("backup.targets", "audit.config", "health.check"):  # the modules of the other kinds
        assert f"upkeep.handlers.{other}" not in loaded["handler_modules"]


def test_an_unknown_kind_of_target_is_named_with_every_known_kind(tmp_path):
    (tmp_path / "upkeep.yaml").write_text("targets:\n  servces:\n    api: {url: http://localhost}\ntasks: []\n")
    loaded = run_python(
        """
        import json
        from upkeep.config_file import load_config, validate_targets
        from upkeep.errors import ConfigError
        try:
            validate_targets(load_config("upkeep.yaml"))
        except ConfigError as exc:
            print(json.dumps({"error": str(exc)}))
        """,
        tmp_path,
    )
    assert "targets.servces: unknown kind of target" in loaded["error"]
    assert "services" in loaded["error"] and "databases" in loaded["error"]

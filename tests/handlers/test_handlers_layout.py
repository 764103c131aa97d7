"""How the built-in handlers are laid out: one package per domain, no import cycle among their
modules, no module too long to read without a reason at its top, and one ``Source`` interface that
every backup kind implements for create, verify and restore alike."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import grimp

import upkeep.handlers
from upkeep.handlers import BUILTIN_KINDS, BUILTIN_MODULES, builtin_modules

HANDLERS = Path(upkeep.handlers.__file__).parent
MAX_LINES = 520  # "about 500"
REASON = "Why this module is long:"


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), within ``modules``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v) & modules:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle_among_the_handler_modules():
    graph = grimp.build_graph("upkeep")
    modules = {m for m in graph.modules if m.startswith("upkeep.handlers.")}
    assert len(modules) > 80
    assert _cycles(graph, modules) == []


def test_no_handler_module_is_over_about_500_lines_without_a_reason_at_its_top():
    long = []
    for path in sorted(HANDLERS.rglob("*.py")):
        text = path.read_text()
        lines = text.count("\n")
        if lines > MAX_LINES and REASON not in (ast.get_docstring(ast.parse(text)) or ""):
            long.append(f"{path.relative_to(HANDLERS)}: {lines} lines")
    assert long == []


def test_no_module_name_says_not_auto_loaded_the_index_says_what_registers():
    underscored = [
        str(p.relative_to(HANDLERS))
        for p in HANDLERS.rglob("_*")
        if p.name not in ("__init__.py", "__pycache__") and "__pycache__" not in p.parts
    ]
    assert underscored == []
    assert set(builtin_modules()) == set(BUILTIN_MODULES.values()) | set(BUILTIN_KINDS.values())
    packages = {m.split(".")[0] for m in builtin_modules() if "." in m}
    assert {"audit", "backup", "db", "health", "housekeeping", "logs", "system", "trends", "workflow"} <= packages


def test_every_backup_kind_implements_one_source_interface_for_create_verify_and_restore():
    from upkeep.handlers.backup.sources import TYPES, kind
    from upkeep.handlers.backup.sources.base import Source

    for type_name in TYPES:
        cls = kind(type_name)
        assert issubclass(cls, Source) and cls.type == type_name
        for method in ("default_name", "create", "verify", "restore_plan", "restore"):
            owner = next(k for k in cls.__mro__ if method in k.__dict__)
            assert owner is not Source, f"{type_name} does not implement {method}"


def test_every_module_under_handlers_imports_on_its_own():
    for info in pkgutil.walk_packages(upkeep.handlers.__path__, "upkeep.handlers."):
        importlib.import_module(info.name)

"""Every number a user can set has documented bounds, and every edge refuses a value outside them.

The numeric fields are found by introspection (the task spec, every handler's config model with
its nested models, heartbeat monitors, server settings, the API's request bodies and parameters),
so a field added later is covered without touching this file. Each is tried just outside its
bounds and at 1e300, inf and nan through the API (a 4xx problem naming the field), ``upkeep apply``
(exit 2, one line naming the field) and run overrides (both), and nothing is written.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
import pytest
import typer.testing
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from upkeep.engine.registry import OVERRIDABLE, REGISTRY
from upkeep.engine.taskspec import TaskSpec
from upkeep.heartbeats.spec import HeartbeatSpec
from upkeep.settings import Settings
from upkeep.store.db import Store

sys.path.insert(0, str(Path(__file__).parent.parent / "api"))
from _env import make_env  # noqa: E402

REGISTRY.ensure_loaded()


@pytest.fixture
def api(tmp_path, sqlite_store):
    env = make_env(tmp_path, sqlite_store)
    yield env
    env.client.close()


@dataclass(frozen=True)
class Leaf:
    """One number a user can set: where it sits in its root model, its type and its bounds."""

    root: str
    path: tuple  # field names, "[]" for a list item, ("{}", key) for a mapping's value
    literals: tuple  # per field name in ``path``: the model's fixed Literal fields (a union's tag)
    kind: type
    lower: tuple[str, float] | None  # ("ge", 0) or ("gt", 0)
    upper: tuple[str, float] | None  # ("le", 10) or ("lt", 10)

    @property
    def name(self) -> str:
        """The field the error message must name (the innermost model field on the path)."""
        return [p for p in self.path if isinstance(p, str) and p != "[]"][-1]

    @property
    def dotted(self) -> str:
        return ".".join(p if isinstance(p, str) else p[1] for p in self.path)

    def payload(self, value: Any) -> dict[str, Any]:
        """The smallest mapping that puts ``value`` at this leaf (a union member's tag included)."""
        out: Any = value
        steps = list(zip(self.path, self.literals, strict=True))
        for step, literals in reversed(steps):
            if step == "[]":
                out = [out]
            elif isinstance(step, tuple):
                out = {step[1]: out}
            else:
                out = {**literals, step: out}
        return out

    def bad_values(self) -> list[Any]:
        values = []
        if self.lower is not None:
            op, bound = self.lower
            values.append(bound if op == "gt" else self._step(bound, -1))
        if self.upper is not None:
            op, bound = self.upper
            values.append(bound if op == "lt" else self._step(bound, +1))
        return [*values, 1e300, math.inf, math.nan]

    def _step(self, bound: float, direction: int) -> float:
        if self.kind is int:
            return int(bound) + direction
        return math.nextafter(float(bound), direction * math.inf)


def _literals(model: type[BaseModel]) -> dict[str, Any]:
    out = {}
    for name, info in model.model_fields.items():
        args = get_args(info.annotation)
        if get_origin(info.annotation) is Literal and len(args) == 1 and info.is_required():
            out[name] = args[0]
    return out


def _bounds(metadata: list) -> tuple[tuple[str, float] | None, tuple[str, float] | None]:
    lower = upper = None
    for item in metadata:
        for cls, attr, side in ((at.Ge, "ge", 0), (at.Gt, "gt", 0), (at.Le, "le", 1), (at.Lt, "lt", 1)):
            if isinstance(item, cls):
                if side == 0:
                    lower = (attr, getattr(item, attr))
                else:
                    upper = (attr, getattr(item, attr))
    return lower, upper


def _walk(root: str, ann: Any, metadata: list, path: tuple, literals: tuple, seen: frozenset) -> Iterator[Leaf]:
    origin, args = get_origin(ann), get_args(ann)
    if origin is Annotated:
        inner, *extra = args
        more = [m for e in extra for m in (e.metadata if isinstance(e, FieldInfo) else [e])]
        yield from _walk(root, inner, metadata + more, path, literals, seen)
    elif origin in (Union, types.UnionType):
        for arg in args:
            yield from _walk(root, arg, metadata, path, literals, seen)
    elif origin in (list, set, tuple):
        yield from _walk(root, args[0], [], (*path, "[]"), (*literals, {}), seen)
    elif origin is dict:
        keys = get_args(args[0]) if get_origin(args[0]) is Literal else ("x",)
        yield from _walk(root, args[1], [], (*path, ("{}", keys[0])), (*literals, {}), seen)
    elif ann in (int, float):
        yield Leaf(root, path, literals, ann, *_bounds(metadata))
    elif isinstance(ann, type) and issubclass(ann, BaseModel) and ann not in seen:
        fixed = _literals(ann)
        for name, info in ann.model_fields.items():
            yield from _walk(
                root, info.annotation, list(info.metadata), (*path, name), (*literals, fixed), seen | {ann}
            )


def leaves(root: str, model: type[BaseModel]) -> list[Leaf]:
    return list(_walk(root, model, [], (), (), frozenset()))


ROOTS: dict[str, type[BaseModel]] = {
    "task": TaskSpec,
    "heartbeat": HeartbeatSpec,
    "server": Settings,
    **{spec.name: spec.config_model for spec in REGISTRY.all()},
}
ALL = [leaf for root, model in ROOTS.items() for leaf in leaves(root, model)]
TASK_ROOTS = [root for root in ROOTS if root not in ("heartbeat", "server")]


def _id(leaf: Leaf) -> str:
    return f"{leaf.root}:{leaf.dotted}"


def test_the_walk_finds_the_fields_it_must():
    found = {_id(leaf) for leaf in ALL}
    for expected in (
        "task:timeout_seconds",
        "task:jitter_seconds",
        "task:notify.after_consecutive_failures",
        "health.check:checks.[].timeout",
        "health.check:checks.[].port",
        "system.resources:load_warn_per_core.load1",
        "server:heartbeat_seconds",
    ):
        assert expected in found, sorted(found)
    assert len(ALL) > 150


@pytest.mark.parametrize("leaf", ALL, ids=_id)
def test_every_number_a_user_sets_has_documented_bounds(leaf):
    assert leaf.lower is not None and leaf.upper is not None, (
        f"{_id(leaf)} needs ge/gt and le/lt in its Field: the docs and OpenAPI show them, and an upper "
        "bound is what refuses 1e300, inf and nan"
    )


def test_the_api_documents_bounds_on_every_number_it_accepts(api):
    spec = api.client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    missing = []

    def check(schema: dict, where: str, seen: frozenset = frozenset()) -> None:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                check(schemas[name], f"{where}", seen | {name})
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in schema.get(key, []):
                check(sub, where, seen)
        if schema.get("type") in ("integer", "number"):
            has_low = "minimum" in schema or "exclusiveMinimum" in schema
            has_high = "maximum" in schema or "exclusiveMaximum" in schema
            if not (has_low and has_high):
                missing.append(where)
        for name, sub in schema.get("properties", {}).items():
            check(sub, f"{where}.{name}", seen)
        if isinstance(schema.get("items"), dict):
            check(schema["items"], f"{where}[]", seen)
        if isinstance(schema.get("additionalProperties"), dict):
            check(schema["additionalProperties"], f"{where}{{}}", seen)

    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            for param in op.get("parameters", []):
                check(param.get("schema", {}), f"{method} {path} ?{param['name']}")
            for content in op.get("requestBody", {}).get("content", {}).values():
                check(content["schema"], f"{method} {path} body")
    assert not missing, missing


def _task_body(leaf: Leaf, value: Any) -> dict[str, Any]:
    if leaf.root == "task":
        return {"name": "bad", "type": "debug.noop", **leaf.payload(value)}
    return {"name": "bad", "type": leaf.root, "config": leaf.payload(value)}


def _post_json(env, path: str, body: dict[str, Any]):
    """POST a body as Python writes it: nan and inf as the NaN and Infinity a JSON client may send."""
    headers = {**env.headers("admin"), "content-type": "application/json"}
    return env.client.post(path, content=json.dumps(body), headers=headers)


def _names_field(text: str, leaf: Leaf) -> bool:
    return leaf.name in text


def test_the_api_refuses_each_number_outside_its_bounds_naming_the_field(api):
    for leaf in (leaf for leaf in ALL if leaf.root != "server"):
        root = leaf.root
        for value in leaf.bad_values():
            if root == "heartbeat":
                body = {"name": "bad", "schedule": "@every 1h", **leaf.payload(value)}
                response = _post_json(api, "/api/v1/heartbeats", body)
            else:
                response = _post_json(api, "/api/v1/scheduled-tasks", _task_body(leaf, value))
            assert 400 <= response.status_code < 500, (_id(leaf), value, response.status_code, response.text)
            assert response.headers["content-type"].startswith("application/problem+json"), response.text
            assert _names_field(response.text, leaf), (_id(leaf), value, response.text)
    assert api.get("/api/v1/scheduled-tasks").json()["total"] == 0
    assert api.get("/api/v1/heartbeats").json()["total"] == 0


def _yaml_for(leaf: Leaf, value: Any) -> str:
    if leaf.root == "server":
        return yaml.safe_dump({"server": leaf.payload(value)})
    if leaf.root == "heartbeat":
        return yaml.safe_dump({"heartbeats": [{"name": "bad", "schedule": "@every 1h", **leaf.payload(value)}]})
    return yaml.safe_dump({"tasks": [_task_body(leaf, value)]})


@pytest.fixture
def quick_cli(cli, monkeypatch):
    """The CLI fixture, its Typer app turned into a command once rather than on every call (the
    conversion is most of an in-process call's time, and these tests make thousands)."""
    monkeypatch.setattr(typer.testing, "_get_command", functools.cache(typer.testing._get_command))
    monkeypatch.delenv("UPKEEP_HEARTBEAT_SECONDS")  # the environment would win over server:
    return cli


@pytest.mark.parametrize("root", list(ROOTS))
def test_apply_refuses_each_number_outside_its_bounds_with_exit_2_naming_the_field(quick_cli, root):
    cli = quick_cli
    for leaf in leaves(root, ROOTS[root]):
        for value in leaf.bad_values():
            cli.write(_yaml_for(leaf, value))
            result = cli("apply", expect=None)
            assert result.exit_code == 2, (_id(leaf), value, result.exit_code, result.stdout, result.stderr)
            assert "Traceback" not in result.stdout + result.stderr
            assert result.stderr.startswith("error: "), result.stderr
            assert _names_field(result.stderr, leaf), (_id(leaf), value, result.stderr)
    assert not (cli.data_dir / "upkeep.db").exists(), "a refused file must not even open the store"


OVERRIDABLE_LEAVES = [
    leaf
    for root in TASK_ROOTS
    if root != "task"
    for leaf in leaves(root, ROOTS[root])
    if len(leaf.path) == 1
    and isinstance(ROOTS[root].model_fields[leaf.path[0]].json_schema_extra, dict)
    and ROOTS[root].model_fields[leaf.path[0]].json_schema_extra.get(OVERRIDABLE)
]
# the smallest valid config of each handler with an overridable number, from upkeep.yaml
BASE_CONFIG = {"db.terminate_sessions": {"target": "main"}}


def test_run_overrides_refuse_each_number_outside_its_bounds(quick_cli, tmp_path):
    cli = quick_cli
    assert OVERRIDABLE_LEAVES, "the walk finds no overridable numbers"
    roots = sorted({leaf.root for leaf in OVERRIDABLE_LEAVES})
    cli.write(
        yaml.safe_dump(
            {
                "targets": {"databases": {"main": {"url": f"sqlite:///{tmp_path / 'app.db'}"}}},
                "tasks": [
                    {"name": f"t-{i}", "type": root, "config": BASE_CONFIG.get(root, {})}
                    for i, root in enumerate(roots)
                ],
            }
        )
    )
    cli("apply")
    before = cli.dump()
    env = make_env(tmp_path, Store(cli.db_url))
    try:
        for leaf in OVERRIDABLE_LEAVES:
            task = f"t-{roots.index(leaf.root)}"
            for value in leaf.bad_values():
                response = _post_json(env, f"/api/v1/scheduled-tasks/{task}/run", {"overrides": leaf.payload(value)})
                assert 400 <= response.status_code < 500, (_id(leaf), value, response.text)
                assert _names_field(response.text, leaf), (_id(leaf), value, response.text)
                result = cli(
                    "tasks",
                    "trigger",
                    task,
                    "--set",
                    f"{leaf.name}={yaml.safe_dump(value).splitlines()[0]}",
                    expect=None,
                )
                assert result.exit_code == 2, (_id(leaf), value, result.stdout, result.stderr)
                assert _names_field(result.stderr, leaf), (_id(leaf), value, result.stderr)
    finally:
        env.client.close()
    after = cli.dump()
    after.pop("api_keys", None), before.pop("api_keys", None)
    assert after == before


@pytest.mark.parametrize("leaf", [leaf for leaf in ALL if leaf.root == "task"], ids=_id)
def test_a_task_at_its_bounds_is_accepted(leaf):
    for op_bound in (leaf.lower, leaf.upper):
        op, bound = op_bound
        value = bound if op in ("ge", "le") else leaf._step(bound, +1 if op == "gt" else -1)
        TaskSpec.model_validate(_task_body(leaf, value))


def test_a_yaml_nested_too_deep_is_refused_with_exit_2(cli):
    cli.write("tasks:\n  - name: deep\n    type: debug.noop\n    config: " + "[" * 5000 + "]" * 5000 + "\n")
    result = cli("apply", expect=None)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    assert "nest" in result.stderr, result.stderr

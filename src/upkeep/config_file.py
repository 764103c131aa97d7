"""``upkeep.yaml``: config as code. Finding and loading it (with line-numbered errors) and
validating it; ``upkeep.app.config_plan`` compares it with the store (the diff of ``apply``) and
``upkeep.app.config`` applies and exports it.

The file (found via ``--config``, ``UPKEEP_CONFIG``, then ``./upkeep.yaml``,
``~/.config/upkeep/upkeep.yaml``, ``/etc/upkeep/upkeep.yaml``) has four sections::

    server:     # process settings (host, port, worker_processes, heartbeat_seconds, ...);
                # environment variables (UPKEEP_PORT, ...) win over these
    targets:    # inventory: kind -> name -> mapping (services, databases, logs, files, backups, ...)
    channels:   # notification channels: name -> {url: apprise URL, ...}
    tasks:      # a list of tasks (the TaskSpec fields: name, type, schedule, config, tiers, ...)
    heartbeats: # monitors of jobs upkeep does not run (upkeep.heartbeats.config)
    silences:   # recurring and one-off silences of alerts (upkeep.app.silence_file)

Secrets are written as ``${env:NAME}``. They are stored unresolved (targets and channels in the
records domain ``_upkeep``, task config in the task) and resolved only at run time; diffs and
exports never show a resolved or plain-text secret.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from upkeep import secrets as secret_refs
from upkeep.errors import ConfigError, UserError
from upkeep.settings import SYSTEM_CONFIG, Settings
from upkeep.yamlload import ShallowLoader

# The registry, the task model and the targets are imported by the functions that validate: a
# command that reads the file for its settings alone loads none of them.
if TYPE_CHECKING:
    from upkeep.engine.registry import Registry
    from upkeep.engine.taskspec import TaskSpec

log = logging.getLogger(__name__)

DEFAULT_NAME = "upkeep.yaml"
TEMPLATE = Path(__file__).parent / "config" / "default.yaml"
SERVER_KEYS = tuple(k for k in Settings.model_fields if k != "config")


# --- finding and reading the file -----------------------------------------------------------


def config_candidates(
    explicit: str | os.PathLike | None = None, environ: dict[str, str] | None = None
) -> list[tuple[str, Path]]:
    """Where the config file may be, in order, each with how the user would name the place:
    ``--config`` or ``UPKEEP_CONFIG`` alone when given, else ``./upkeep.yaml``, the user's
    ``~/.config/upkeep/upkeep.yaml`` (``$XDG_CONFIG_HOME``), the system's ``/etc/upkeep/upkeep.yaml``."""
    env = os.environ if environ is None else environ
    if explicit:
        return [("--config", Path(explicit).expanduser().absolute())]
    if env.get("UPKEEP_CONFIG"):
        return [("UPKEEP_CONFIG", Path(env["UPKEEP_CONFIG"]).expanduser().absolute())]
    user_dir = Path(env.get("XDG_CONFIG_HOME") or Path(env.get("HOME") or Path.home()) / ".config")
    return [
        ("the current directory", Path(DEFAULT_NAME).absolute()),
        ("the user's config", user_dir.expanduser().absolute() / "upkeep" / DEFAULT_NAME),
        ("the system's config", SYSTEM_CONFIG),
    ]


def find_config(
    explicit: str | os.PathLike | None = None, environ: dict[str, str] | None = None, *, must_exist: bool = False
) -> Path:
    """The first existing candidate (``config_candidates``). None existing: with ``must_exist`` a
    ConfigError naming every place looked at, else the first candidate (where ``init`` writes)."""
    candidates = config_candidates(explicit, environ)
    for _label, path in candidates:
        if path.is_file():
            return path
    if not must_exist:
        return candidates[0][1]
    looked = ", ".join(f"{path} ({label})" for label, path in candidates)
    raise ConfigError(
        f"no upkeep.yaml found: looked in {looked}",
        hint="run `upkeep init` to create one here, or pass --config PATH",
    )


class _Loader(ShallowLoader):
    """Refuses duplicate keys too (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_error(label: str, exc: yaml.YAMLError) -> ConfigError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    text = f"{problem}" if not context or problem.startswith("duplicate") else f"{context}: {problem}"
    where = f"{label} line {mark.line + 1}" if mark is not None else label
    return ConfigError(f"{where}: {' '.join(text.split())}", hint="fix the YAML syntax")


def _task_lines(text: str) -> list[int]:
    """1-based line of each item of the top-level ``tasks:`` list (for error messages)."""
    try:
        root = yaml.compose(text, Loader=ShallowLoader)
    except yaml.YAMLError:
        return []
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if getattr(key, "value", None) == "tasks" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


# --- the model --------------------------------------------------------------------------------


class ChannelSpec(BaseModel):
    """A notification channel: an apprise URL (secrets as ``${env:NAME}``) plus channel options."""

    model_config = ConfigDict(extra="allow")

    url: str = Field(min_length=1, description="apprise URL, e.g. mailto://..., or ${env:OPS_WEBHOOK}")


class ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(1, description="Format version of the file")
    server: dict[str, Any] = Field(default_factory=dict, description="Settings; env vars win")
    targets: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict, description="kind -> name -> mapping")
    channels: dict[str, ChannelSpec] = Field(default_factory=dict)
    tasks: list[dict[str, Any]] = Field(default_factory=list)
    heartbeats: list[dict[str, Any]] = Field(default_factory=list, description="Monitors of jobs upkeep does not run")
    silences: list[Any] = Field(default_factory=list, description="Silences of alerts: match, windows, until, reason")

    @field_validator("server", "targets", "channels", "tasks", "heartbeats", "silences", mode="before")
    @classmethod
    def _empty_section(cls, value: Any, info) -> Any:
        if value is None:
            return [] if info.field_name in ("tasks", "heartbeats", "silences") else {}
        return value

    @field_validator("targets", mode="before")
    @classmethod
    def _empty_kinds(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value

    @field_validator("server")
    @classmethod
    def _server_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(k for k in value if k not in SERVER_KEYS)
        if unknown:
            raise ValueError(f"unknown setting {unknown[0]!r} (known: {', '.join(SERVER_KEYS)})")
        return value


def _line_of(text: str, parts: list[str]) -> int | None:
    """1-based line of the deepest node of ``parts`` (mapping keys, list indexes) in the YAML text."""
    try:
        node = yaml.compose(text, Loader=ShallowLoader)
    except yaml.YAMLError:
        return None
    line = None
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if str(getattr(k, "value", "")) == part), None)
            if found is None:
                break
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            break
    return line


@dataclass
class LoadedConfig:
    path: Path
    model: ConfigFile
    task_lines: list[int] = field(default_factory=list)
    text: str = ""

    def where(self, index: int) -> str:
        if index < len(self.task_lines):
            return f"{self.path.name} line {self.task_lines[index]}"
        return self.path.name

    def where_at(self, parts: list[str]) -> str:
        line = _line_of(self.text, parts)
        return f"{self.path.name} line {line}" if line else self.path.name


def parse_config(text: str, path: Path) -> LoadedConfig:
    """Parse and validate the file's structure (tasks are validated by ``validate_tasks``)."""
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise _yaml_error(path.name, exc) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name}: expected a mapping with server/targets/channels/tasks at the top")
    try:
        model = ConfigFile.model_validate(data)
    except ValidationError as exc:
        from upkeep.engine.registry import format_validation_error

        raise ConfigError(f"{path.name}: {format_validation_error(exc, prefix='').lstrip('.')}") from None
    return LoadedConfig(path=path, model=model, task_lines=_task_lines(text), text=text)


def load_config(path: str | os.PathLike) -> LoadedConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist", hint="run `upkeep init` to create one") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return parse_config(text, path)


def settings_for(
    config: str | os.PathLike | None = None,
    database_url: str | None = None,
    *,
    environ: dict[str, str] | None = None,
    require_file: bool = True,
) -> Settings:
    """Settings: the file's ``server:`` section under the environment (env wins), CLI options on top."""
    env = os.environ if environ is None else environ
    path = find_config(config, env, must_exist=require_file)
    overrides: dict[str, Any] = {}
    if path.exists() or require_file:
        server = load_config(path).model.server
        env_keys = {k.upper() for k in env}
        for key, value in server.items():
            if f"UPKEEP_{key.upper()}" in env_keys:
                continue
            overrides[key] = secret_refs.resolve(value, env)
        if overrides.get("data_dir") and not Path(str(overrides["data_dir"])).expanduser().is_absolute():
            overrides["data_dir"] = str(path.parent / str(overrides["data_dir"]))
    if database_url:
        overrides["database_url"] = database_url
    try:
        return Settings(config=path, **overrides)
    except ValidationError as exc:
        from upkeep.engine.registry import format_validation_error

        raise ConfigError(f"invalid setting: {format_validation_error(exc, prefix='server')}") from None


# --- tasks: validation and normalisation ---------------------------------------------------------


def normalized_spec(spec: TaskSpec, registry: Registry | None = None) -> dict[str, Any]:
    """A validated task in the shape ``task_spec_of`` gives for a stored task (so they compare)."""
    from upkeep.engine.registry import REGISTRY
    from upkeep.engine.taskspec import parse_duration

    registry = registry or REGISTRY
    data = spec.model_dump(mode="python")
    data["type"] = registry.resolve(spec.type)[0].name
    data["schedule_anchor"] = iso_utc(spec.schedule_anchor)
    data["notify"] = spec.notify.model_dump(mode="json")
    data["expect_success_within"] = (
        f"{int(parse_duration(spec.expect_success_within))}s" if spec.expect_success_within else None
    )
    return data


def iso_utc(value: Any) -> str | None:
    """A time (text or datetime, naive meaning UTC) as ISO text in UTC: how specs compare anchors."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def validate_tasks(loaded: LoadedConfig, registry: Registry | None = None) -> list[dict[str, Any]]:
    """Validate every task of the file; the first problem raises one ConfigError naming task and line."""
    from upkeep.engine.registry import REGISTRY
    from upkeep.engine.targets import affects_problems
    from upkeep.engine.taskspec import validate_task

    registry = registry or REGISTRY
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(loaded.model.tasks):
        where = loaded.where(index)
        name = raw.get("name") if isinstance(raw, dict) else None
        try:
            spec = validate_task(raw, registry, where=f"task #{index + 1}" if not name else "task")
        except UserError as exc:
            message = exc.message
            if exc.field and exc.field not in message:
                message = f"{exc.field}: {message}"
            if name and repr(name) not in message:
                message = f"task {name!r}: {message}"
            raise ConfigError(f"{where}: {message}", hint=exc.hint) from None
        if spec.name in seen:
            raise ConfigError(
                f"{where}: task {spec.name!r} is defined twice (also task #{seen[spec.name] + 1})",
                hint="task names must be unique",
            )
        seen[spec.name] = index
        for parts, message in affects_problems(spec.affects and spec.affects.model_dump(), loaded.model.targets):
            path = ["tasks", str(index), *parts]
            raise ConfigError(f"{loaded.where_at(path)}: task {spec.name!r}: {'.'.join(parts)}: {message}")
        out.append(normalized_spec(spec, registry))
    return out


def validate_targets(loaded: LoadedConfig, registry: Registry | None = None) -> None:
    """Check every ``targets`` entry with its kind's model (``inventory_kind``); the first problem
    raises one ConfigError naming file, line and field, as ``validate_tasks`` does for tasks."""
    from upkeep.engine.registry import REGISTRY, validation_errors
    from upkeep.engine.targets import dependency_problems, handler_entry

    registry = registry or REGISTRY
    for kind, entries in loaded.model.targets.items():
        check = registry.inventory_check(kind)
        if check is None:
            raise ConfigError(
                f"{loaded.where_at(['targets', kind])}: targets.{kind}: unknown kind of target",
                hint=f"known kinds: {', '.join(sorted(registry.inventory_kinds()))}",
            )
        for name, entry in entries.items():
            try:
                check(name, handler_entry(entry))
            except ValidationError as exc:
                loc, message = validation_errors(exc)[0]
                hint = None
            except UserError as exc:
                loc, message, hint = exc.field or "", exc.message, exc.hint
            else:
                continue
            parts = ["targets", kind, name, *(loc.split(".") if loc else [])]
            raise ConfigError(f"{loaded.where_at(parts)}: {'.'.join(parts)}: {message}", hint=hint)
    for parts, message, hint in dependency_problems(loaded.model.targets)[:1]:
        raise ConfigError(f"{loaded.where_at(parts)}: {'.'.join(parts)}: {message}", hint=hint)


def plain_secret_warnings(value: Any, path: str) -> list[str]:
    """Paths of secret-looking keys whose value is plain text instead of a ``${env:NAME}`` reference."""
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            sub = f"{path}.{k}"
            if isinstance(k, str) and secret_refs.is_secret_key(k) and isinstance(v, str) and v:
                if not secret_refs.REF_RE.fullmatch(v):
                    found.append(sub)
            else:
                found.extend(plain_secret_warnings(v, sub))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found.extend(plain_secret_warnings(v, f"{path}[{i}]"))
    elif isinstance(value, str) and secret_refs.redact_url_password(value) != value:
        found.append(path)
    return found


# --- what export writes ---------------------------------------------------------------------------


def _defaults() -> dict[str, Any]:
    from upkeep.engine.taskspec import TaskSpec

    spec = TaskSpec(name="x", type="x")
    data = spec.model_dump(mode="python")
    data["notify"] = spec.notify.model_dump(mode="json")
    return data


def compact_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A stored task's spec without fields at their default value (readable YAML)."""
    defaults = _defaults()
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if key in ("name", "type") or value != defaults.get(key, object()):
            out[key] = value
    return out


# ``upkeep init --template NAME``: the files whose text, one after the other, make upkeep.yaml
TEMPLATES = {"default": (TEMPLATE,), "runbooks": (TEMPLATE, TEMPLATE.with_name("runbooks.yaml"))}


def render_template(data_dir: Path, template: str = "default") -> str:
    """The commented ``upkeep.yaml`` that ``upkeep init`` writes: the default, or the default with
    the runbooks' tasks and checklists after its own tasks (``runbooks``)."""
    if template not in TEMPLATES:
        raise UserError(f"unknown template {template!r}", hint=f"one of {', '.join(TEMPLATES)}", field="template")
    text = "".join(path.read_text() for path in TEMPLATES[template])
    return text.replace("__DATA_DIR__", str(data_dir))

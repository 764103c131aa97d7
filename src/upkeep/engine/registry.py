"""The handler registry: ``@handler("domain.action", config=Model, ...)``.

A handler is a function ``(ctx: RunContext, config: Model) -> dict``. Its pydantic config model
gives defaults, validation, the JSON schema the UI renders, which fields a run may override
(``overridable(...)``), and which values only ``upkeep.yaml`` or the local CLI may say
(``host_scoped(...)``, see ``upkeep.engine.hostscope``). ``dry_run`` is never part of a model: it
is a per-run flag the engine takes out of the config (a task's config may set it) and hands over
as ``ctx.dry_run``.

The returned dict is the run's result. Two keys are read by the engine: ``outcome``
(``ok | warning | critical``, default ``ok``) and ``summary`` (one line for lists and alerts).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from upkeep.errors import ConfigError, UserError, did_you_mean

log = logging.getLogger(__name__)

# The built-in handlers are a plug-in like the others (their entry point is
# ``upkeep.handlers:load_builtin``): the registry names their package, it does not import it, so the
# engine stays below the handlers that register into it. Its index loads one handler or kind alone.
BUILTIN_PACKAGE = "upkeep.handlers"


def _builtin() -> Any:
    """The built-in handlers' package (``load_builtin``, ``load_builtin_for``, ``load_builtin_kind``)."""
    return importlib.import_module(BUILTIN_PACKAGE)


NAME_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
OVERRIDABLE = "x-overridable"
RUN_FLAGS = ("dry_run",)


class HandlerConfig(BaseModel):
    """Base for handler config models: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class EmptyConfig(HandlerConfig):
    pass


def overridable(default: Any = ..., **kwargs: Any) -> Any:
    """A config field that a single run may override (``upkeep run --set`` / the API's run body)."""
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra[OVERRIDABLE] = True
    return Field(default, json_schema_extra=extra, **kwargs)


INVENTORY_NAMES = "x-inventory-names"  # a list of names of one inventory kind (the UI's multi-select)


def inventory_names(kind: str, default: Any = ..., *, overridable: bool = False, **kwargs: Any) -> Any:
    """A list of names of ``targets.<kind>`` entries (``services: [api, web]``): a plain value, which
    the UI offers as a multi-select of the inventory's names."""
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra[INVENTORY_NAMES] = kind
    if overridable:
        extra[OVERRIDABLE] = True
    return Field(default, json_schema_extra=extra, **kwargs)


def host_scoped(
    default: Any = ...,
    *,
    refs: Iterable[str] = (),
    also: Iterable[str] = (),
    any_name: bool = False,
    unless: str | None = None,
    overridable: bool = False,
    **kwargs: Any,
) -> Any:
    """A config field that names something on the host (a path, DSN, command, signal, mode...):
    only upkeep.yaml or the local CLI may set it. With ``refs=("backups",)`` a name from those
    inventory kinds may stand in its place anywhere, and so may the ``also`` names (``upkeep``, upkeep's
    own store); ``any_name`` accepts any plain name;
    ``unless="create"`` makes it a plain value when the caller also sets ``create``."""
    from upkeep.engine import hostscope

    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra[hostscope.HOST_SCOPED] = True
    if refs:
        extra[hostscope.INVENTORY_REFS] = list(refs)
    if also:
        extra[hostscope.ALSO_NAMES] = list(also)
    if any_name:
        extra[hostscope.ANY_NAME] = True
    if unless:
        extra[hostscope.UNLESS] = unless
    if overridable:
        extra[OVERRIDABLE] = True
    return Field(default, json_schema_extra=extra, **kwargs)


_SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)(?<!etc)[.!?](?=\s)")


def first_sentence(text: str) -> str:
    """The first sentence of the first paragraph of ``text``, its lines joined."""
    paragraph = " ".join(inspect.cleandoc(text).split("\n\n")[0].split())
    end = _SENTENCE_END.search(paragraph)
    return paragraph[: end.end()] if end else paragraph


def validation_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """``(dotted field, message)`` of each error, the message saying what was given."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) if err["loc"] else ""
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; `upkeep handlers show TYPE` lists the fields)"
        elif "input" in err and err["type"] not in ("missing",) and not isinstance(err["input"], dict):
            message = f"{message} (got {err['input']!r})"
        out.append((loc, message))
    return out


def format_validation_error(exc: ValidationError, prefix: str = "config") -> str:
    return "; ".join(f"{f'{prefix}.{loc}' if loc else prefix}: {message}" for loc, message in validation_errors(exc))


@dataclass
class HandlerSpec:
    name: str
    func: Callable[..., dict]
    config_model: type[BaseModel]
    aliases: tuple[str, ...] = ()
    destructive: bool = False
    needs_confirm: bool = False  # a real (not dry) run needs the run request's own confirmation
    requires: tuple[str, ...] = ()  # binaries the handler needs (checked by `upkeep doctor`)
    # what a foreground worker prepares while the run is being created (``upkeep run``), so that a
    # costly first step of the handler (DuckDB's import, opening a database) overlaps the CLI's own
    # work: modules to import, or ``module:function`` to import and call (``preload``)
    preload: tuple[str, ...] = ()
    # reads and writes nothing a run does not return (``logs.analyze``): ``upkeep run`` may start it
    # from its own command line before the run exists and keep the result if the run's config is
    # the same (``engine.speculate``). Its function then uses only its config and ``ctx``'s log,
    # progress, scope, now and cancel: targets, records and services end the speculation. A
    # function of the validated config says for which configs (the others need the inventory).
    speculative: bool | Callable[[BaseModel], bool] = False
    description: str = ""
    module: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def domain(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def summary(self) -> str:
        """The description's first sentence, whole however the docstring wraps its lines."""
        return first_sentence(self.description)

    def split_run_flags(self, raw: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Separate per-run flags (``dry_run``) from the handler's own config."""
        config = dict(raw or {})
        flags = {k: config.pop(k) for k in RUN_FLAGS if k in config}
        if "confirm" in config:
            raise ConfigError(
                "config.confirm: a restore or other confirmed action is never pre-approved in task config",
                hint="pass confirm with the run request (--yes on the CLI)",
            )
        return config, flags

    def validate_config(self, raw: dict[str, Any] | None) -> BaseModel:
        config, _ = self.split_run_flags(raw)
        try:
            return self.config_model.model_validate(config)
        except ValidationError as exc:
            raise ConfigError(f"invalid config for {self.name}: {format_validation_error(exc)}") from None

    def storable_config(self, raw: dict[str, Any] | None) -> dict[str, Any]:
        """``raw`` checked by the model, as the JSON a run or task keeps: a value typed outside JSON
        (a datetime from YAML or Python) is kept as its text, which the model reads back alike."""
        from pydantic_core import to_jsonable_python

        self.validate_config(raw)
        return to_jsonable_python(dict(raw or {}))

    def check_confirmed(self, *, dry_run: bool, confirm: bool) -> None:
        """Refuse, before any run exists, a real run of a handler that needs confirmation without it."""
        if self.needs_confirm and not dry_run and not confirm:
            raise UserError(
                f"{self.name} changes data and needs confirmation for each run: nothing was run",
                hint="pass --yes, or confirm: true in an API request; --dry-run shows the plan",
                field="confirm",
            )

    def overridable_fields(self) -> set[str]:
        out = set()
        for name, info in self.config_model.model_fields.items():
            extra = info.json_schema_extra
            if isinstance(extra, dict) and extra.get(OVERRIDABLE):
                out.add(name)
        return out

    def check_overrides(self, overrides: dict[str, Any]) -> None:
        allowed = self.overridable_fields()
        bad = sorted(k for k in overrides if k not in allowed and k not in RUN_FLAGS)
        if bad:
            allowed_text = ", ".join(sorted(allowed)) or "none"
            raise ConfigError(
                f"{self.name} does not allow a run to override {', '.join(bad)}",
                hint=f"overridable fields: {allowed_text}",
                field=f"overrides.{bad[0]}",
            )

    def host_scoped_fields(self) -> list[tuple[str, dict[str, Any]]]:
        """``(field, marker)`` for every host-scoped field (see ``upkeep.engine.hostscope.marker``)."""
        from upkeep.engine import hostscope

        return hostscope.host_scoped_fields(self.config_model)

    def host_scope_violations(
        self, said: dict[str, Any], inventory: dict[str, Any], prefix: str = "config"
    ) -> list[Any]:
        """The host-scoped values in ``said``: ``upkeep.engine.hostscope.Violation`` each."""
        from upkeep.engine import hostscope

        def config_model_of(name: str) -> type[BaseModel] | None:
            try:
                return REGISTRY.get(name).config_model
            except UserError:
                return None

        return hostscope.violations(
            self.config_model, said, inventory=inventory, prefix=prefix, config_model_of=config_model_of
        )

    def json_schema(self) -> dict[str, Any]:
        return self.config_model.model_json_schema()

    def defaults(self) -> dict[str, Any]:
        out = {}
        for name, info in self.config_model.model_fields.items():
            if not info.is_required():
                value = info.get_default(call_default_factory=True)
                out[name] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "domain": self.domain,
            "summary": self.summary,
            "description": inspect.cleandoc(self.description),
            "destructive": self.destructive,
            "needs_confirm": self.needs_confirm,
            "host_scoped": dict(self.host_scoped_fields()),
            "requires": list(self.requires),
            "overridable": sorted(self.overridable_fields()),
            "config_schema": self.json_schema(),
        }


InventoryCheck = Callable[[str, dict[str, Any]], Any]


class Registry:
    def __init__(self) -> None:
        self._handlers: dict[str, HandlerSpec] = {}
        self._aliases: dict[str, str] = {}
        self._kinds: dict[str, InventoryCheck] = {}
        self._loaded = False

    def register_kind(self, kind: str, check: InventoryCheck) -> None:
        self._kinds[kind] = check

    def inventory_kinds(self) -> dict[str, InventoryCheck]:
        """``targets.<kind>`` -> the check of one entry ``(name, entry)``, raising ValidationError or UserError."""
        self.ensure_loaded()
        return dict(self._kinds)

    def inventory_check(self, kind: str) -> InventoryCheck | None:
        """The check of ``targets.<kind>``, None for a kind nobody declares. A built-in kind imports
        the module that declares it (``upkeep.handlers.BUILTIN_KINDS``); any other loads every handler."""
        if kind not in self._kinds and not self._loaded and not _builtin().load_builtin_kind(kind):
            self.ensure_loaded()
        return self._kinds.get(kind)

    def register(self, spec: HandlerSpec) -> HandlerSpec:
        for name in (spec.name, *spec.aliases):
            if not NAME_RE.match(name):
                raise ValueError(f"handler name {name!r} must look like domain.action (lowercase, underscores)")
        existing = self._handlers.get(spec.name)
        if existing is not None and existing.func is not spec.func and existing.module != spec.module:
            raise ValueError(f"handler {spec.name} registered twice ({existing.module} and {spec.module})")
        self._handlers[spec.name] = spec
        for alias in spec.aliases:
            self._aliases[alias] = spec.name
        return spec

    def ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for ep in entry_points(group="upkeep.handlers"):
            try:
                loaded = ep.load()
                if callable(loaded) and not isinstance(loaded, HandlerSpec):
                    loaded()
            except Exception:  # a broken plug-in must not take upkeep down
                log.exception("could not load handler entry point %s", ep.name)
        _builtin().load_builtin()  # a source tree without metadata; imports are cached

    def _find(self, name: str) -> tuple[HandlerSpec, str | None] | None:
        if name in self._handlers:
            return self._handlers[name], None
        if name in self._aliases:
            return self._handlers[self._aliases[name]], name
        return None

    def resolve(self, name: str) -> tuple[HandlerSpec, str | None]:
        """The canonical handler for ``name`` and the alias used, if any.

        A built-in name imports its own module only (``upkeep.handlers.BUILTIN_MODULES``); any other
        name loads every handler, the plug-ins' entry points included.
        """
        found = self._find(name)
        if found is None and not self._loaded and _builtin().load_builtin_for(name):
            found = self._find(name)
        if found is None:
            self.ensure_loaded()
            found = self._find(name)
        if found is not None:
            return found
        raise UserError(f"unknown task type {name!r}", hint=self.hint_for(name), field="task_type")

    def builtin(self, name: str) -> HandlerSpec | None:
        """The built-in handler ``name`` (or alias), its module imported now; None for any other name
        (a task's, a plug-in's), and nothing else loaded for it."""
        found = self._find(name)
        if found is None and not self._loaded and _builtin().load_builtin_for(name):
            found = self._find(name)
        return found[0] if found is not None else None

    def preload_of(self, name: str) -> tuple[str, ...]:
        """What the built-in handler ``name`` preloads (``builtin``); () for any other name."""
        spec = self.builtin(name)
        return spec.preload if spec is not None else ()

    def hint_for(self, name: str) -> str:
        """What to say about an unknown handler type: the names it may be a typo of, or where to look."""
        guess = did_you_mean(name, [*self.names(), *self._aliases])
        same = [n for n in self.names() if n.split(".")[0] == name.split(".")[0]][:5]
        known = f"known {name.split('.')[0]} handlers: {', '.join(same)}" if same else "see `upkeep handlers list`"
        return f"{guess} {known}" if guess else known

    def get(self, name: str) -> HandlerSpec:
        return self.resolve(name)[0]

    def names(self) -> list[str]:
        self.ensure_loaded()
        return sorted(self._handlers)

    def aliases(self) -> dict[str, str]:
        self.ensure_loaded()
        return dict(self._aliases)

    def all(self) -> list[HandlerSpec]:
        return [self._handlers[n] for n in self.names()]


REGISTRY = Registry()


def preload(names: Iterable[str]) -> None:
    """Prepare what a handler preloads (``HandlerSpec.preload``): import each module, and call the
    function of a ``module:function``. What fails is left to the handler, which says why when it runs."""
    for name in names:
        module, _, function = name.partition(":")
        try:
            imported = importlib.import_module(module)
            if function:
                getattr(imported, function)()
        except Exception:
            log.debug("preloading %s failed", name, exc_info=True)


def inventory_kind(kind: str, model: type[BaseModel] | InventoryCheck, *, registry: Registry | None = None) -> None:
    """Declare what a ``targets.<kind>`` entry of upkeep.yaml holds: a pydantic model, or a function
    ``(name, entry)`` that raises ``ValidationError`` / ``UserError``. ``apply``, ``doctor`` and ``serve``
    check every entry of the file with it (a kind nobody declares is a typo)."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        target_model = model

        def check(name: str, entry: dict[str, Any]) -> Any:
            return target_model.model_validate(entry)

    else:
        check = model
    (registry or REGISTRY).register_kind(kind, check)


def handler(
    name: str,
    *,
    config: type[BaseModel] = EmptyConfig,
    aliases: Iterable[str] = (),
    destructive: bool = False,
    needs_confirm: bool = False,
    requires: Iterable[str] = (),
    preload: Iterable[str] = (),
    speculative: bool | Callable[[BaseModel], bool] = False,
    description: str | None = None,
    registry: Registry | None = None,
) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    """Register a maintenance handler. See the module docstring for the contract. ``needs_confirm``:
    a run that is not a dry run is refused, before it is created, unless its request confirms it."""

    def decorate(func: Callable[..., dict]) -> Callable[..., dict]:
        spec = HandlerSpec(
            name=name,
            func=func,
            config_model=config,
            aliases=tuple(aliases),
            destructive=destructive,
            needs_confirm=needs_confirm,
            requires=tuple(requires),
            preload=tuple(preload),
            speculative=speculative,
            description=description or inspect.getdoc(func) or "",
            module=func.__module__,
        )
        (registry or REGISTRY).register(spec)
        return func

    return decorate

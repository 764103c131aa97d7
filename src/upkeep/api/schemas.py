"""Typed request and response bodies, so the OpenAPI schema says exactly what the API answers."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from upkeep.app.terms import AfterSpec, TaskSpec

Role = Literal["viewer", "operator", "admin"]


def _finite(value: Any, path: str = "") -> Any:
    """Refuse inf and nan anywhere in a free-form mapping (JSON clients may send NaN, Infinity).

    The body is dumped to JSON before the handler's model reads it, and JSON has no such number:
    without this an ``Infinity`` would quietly become null, the field's default."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path or 'value'}: {value!r} is not a number; give a finite one within the field's bounds")
    if isinstance(value, dict):
        for key, item in value.items():
            _finite(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _finite(item, f"{path}.{index}")
    return value


FreeForm = Annotated[dict[str, Any], AfterValidator(_finite)]


class Task(BaseModel):
    id: int
    name: str
    type: str
    description: str
    schedule: str | None
    timezone: str
    schedule_text: str = Field(description="The schedule in words")
    enabled: bool
    tiers: list[str]
    config: dict[str, Any] = Field(description="The handler config, secrets redacted")
    concurrency: str
    misfire: str
    misfire_grace_seconds: int
    locks: list[str]
    windows: list[str]
    max_retries: int
    retry_backoff_seconds: float
    retry_backoff_max_seconds: float
    timeout_seconds: float | None
    jitter_seconds: float
    queue: str
    notify: dict[str, Any]
    expect_success_within_seconds: float | None
    ping_url: str | None = Field(description="Masked: a ping URL is itself a credential")
    affects: dict[str, Any] | None = Field(None, description="Targets its runs disturb (maintenance-aware alerts)")
    after: dict[str, Any] | None = Field(None, description="The tasks whose runs' end starts this one")
    managed_by: str = Field(description="file (upkeep.yaml) or api")
    next_run_at: str | None
    last_run_id: int | None
    last_status: str | None
    last_outcome: str | None
    last_run_at: str | None
    last_success_at: str | None
    last_duration_seconds: float | None
    consecutive_failures: int
    created_at: str | None
    updated_at: str | None


class TaskDetail(Task):
    next_times: list[str] = Field(default_factory=list, description="The next 5 slots (ISO-8601)")
    drift: list[str] = Field(default_factory=list, description="Fields changed since `upkeep apply`")
    upstream: list[str] = Field(default_factory=list, description="Tasks this one runs after (its after.tasks)")
    downstream: list[str] = Field(default_factory=list, description="Tasks whose after: names this one")


class TaskPage(BaseModel):
    items: list[Task]
    total: int
    limit: int
    offset: int


# TaskCreate and TaskPatch are made from TaskSpec's fields (a task as upkeep.yaml writes it), so a field
# added to the task model reaches the API, its OpenAPI schema and its docs with its type, bounds and
# description; only what differs over JSON is said here.
_SET_BY_UPKEEP = ("schedule_anchor",)  # the creation time, or upkeep.yaml's: never sent to the API
_IDENTITY = ("name", "type")  # not patched: a task of another name or type is another task


def _task_fields(*, patch: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, info in TaskSpec.model_fields.items():
        if name in _SET_BY_UPKEEP or (patch and name in _IDENTITY):
            continue
        if not patch:
            fields[name] = (info.annotation, info)
            continue
        # the same type and bounds, null allowed, nothing by default: a field not sent is not changed
        annotation = info.annotation | None
        if info.metadata:
            annotation = Annotated[(annotation, *info.metadata)]
        fields[name] = (annotation, Field(None, description=info.description))
    config = "The handler's config (GET /handlers)"
    if patch:
        fields["config"] = (FreeForm | None, Field(None, description=config + ", merged key by key"))
        fields["after"] = (AfterSpec | None, Field(None, description="Run when other tasks' runs end; null removes it"))
    else:
        fields["config"] = (FreeForm, Field(default_factory=dict, description=config))
    return fields


TaskCreate = create_model(
    "TaskCreate",
    __config__=ConfigDict(extra="forbid"),
    __doc__="A scheduled task, as in upkeep.yaml's ``tasks:``.",
    __module__=__name__,
    **_task_fields(patch=False),
)
TaskPatch = create_model(
    "TaskPatch",
    __config__=ConfigDict(extra="forbid"),
    __doc__="""A partial update. ``config`` is merged key by key into the stored config (a key set to
    ``null`` goes back to its default); the other fields replace the stored value.""",
    __module__=__name__,
    **_task_fields(patch=True),
)


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overrides: FreeForm = Field(
        default_factory=dict, description="Values for the handler's overridable fields (x-overridable)"
    )
    dry_run: bool = Field(False, description="Report what would be done without doing it")
    confirm: bool = Field(False, description="Approve a confirmed action (e.g. a restore) for this run only")


class RunOut(BaseModel):
    id: int
    task_id: int | None
    task_name: str | None
    task_type: str
    requested_type: str | None
    origin: str
    status: str
    outcome: str | None
    attempt: int
    retry_of: int | None
    parent_run_id: int | None
    scheduled_for: str | None
    due_at: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    heartbeat_at: str | None
    duration_seconds: float | None
    dry_run: bool
    config: dict[str, Any]
    queue: str
    timeout_seconds: float | None
    worker: str | None
    progress: float | None
    progress_message: str | None
    summary: str | None
    result: dict[str, Any] | None
    error: str | None
    cancel_requested: bool
    triggered_by: str | None
    trigger_run_id: int | None = Field(None, description="A dependent run: the upstream run whose end created it")
    upstream_runs: list[dict[str, Any]] | None = Field(
        None, description="A dependent run: every upstream run it followed ({task, run_id, status, finished_at})"
    )


class RunPage(BaseModel):
    items: list[RunOut]
    total: int
    limit: int
    offset: int


class RunEventOut(BaseModel):
    seq: int
    ts: str
    level: str
    event: str
    message: str
    data: dict[str, Any] | None


class HandlerOut(BaseModel):
    name: str
    aliases: list[str]
    domain: str
    summary: str
    description: str
    destructive: bool
    requires: list[str]
    overridable: list[str]
    host_scoped: dict[str, dict[str, Any]] = Field(
        description="Fields (dotted, nested models as field[].sub) that name something on the host: only "
        "upkeep.yaml or the local CLI may set them. Each maps to what is accepted in their place elsewhere: "
        "refs (names of these inventory kinds), any_name (any plain name), unless (a plain value when this "
        "sibling field is set too)"
    )
    config_schema: dict[str, Any] = Field(
        description="JSON schema of the config; x-overridable and x-host-scoped (with x-inventory-refs) mark fields"
    )


class AuditOut(BaseModel):
    id: int
    ts: str
    actor: str
    action: str
    object_type: str
    object_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    detail: str | None


class AuditPage(BaseModel):
    items: list[AuditOut]
    total: int
    limit: int
    offset: int


class OverdueTask(BaseModel):
    id: int
    name: str
    type: str
    reason: str


class Stats(BaseModel):
    days: int
    tasks: int
    enabled: int
    runs: int
    by_status: dict[str, int]
    by_outcome: dict[str, int]
    success_rate: float | None
    failing_now: list[str]
    active_runs: int
    overdue: list[OverdueTask]


class KeyOut(BaseModel):
    id: int
    name: str
    role: str
    prefix: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: Role = "viewer"


class KeyCreated(KeyOut):
    token: str = Field(description="Shown once: it is stored hashed and cannot be recovered")


class Me(BaseModel):
    name: str
    role: str
    via: str
    kind: Literal["key", "user"] = Field(description="user: a person's account; key: an API key (a machine)")
    timezone: str | None = Field(None, description="A person's time zone preference")


class Liveness(BaseModel):
    status: str = Field(
        description="ok: this instance's scheduler ticks and its store takes writes; unhealthy (503) otherwise "
        "(whether the database answers at all is /readyz)"
    )
    detail: str | None = Field(None, description="What is unhealthy, each part named: scheduler: ..., store: ...")


class Health(BaseModel):
    status: str
    schema_up_to_date: bool | None = None
    detail: str | None = None

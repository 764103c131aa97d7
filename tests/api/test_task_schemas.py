"""The API's task bodies are made from the one task model, ``TaskSpec``: same fields, types, bounds
and descriptions, so a field added to the model is in the API and its OpenAPI schema."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from upkeep.api.schemas import TaskCreate, TaskPatch
from upkeep.engine.taskspec import TaskSpec


def _values(schema: dict) -> list[dict]:
    """The schemas of a field's non-null values, without its default, title and description."""
    bare = {k: v for k, v in schema.items() if k not in ("default", "title", "description")}
    return [s for s in bare.get("anyOf", [bare]) if s != {"type": "null"}]


def test_create_takes_every_field_of_the_task_model_but_the_anchor_upkeep_sets():
    assert set(TaskCreate.model_fields) == set(TaskSpec.model_fields) - {"schedule_anchor"}
    assert TaskCreate.model_fields["max_retries"].description == TaskSpec.model_fields["max_retries"].description


def test_patch_takes_each_field_but_name_and_type_with_the_same_bounds_and_null_allowed():
    assert set(TaskPatch.model_fields) == set(TaskSpec.model_fields) - {"schedule_anchor", "name", "type"}
    create = TaskCreate.model_json_schema()
    patch = TaskPatch.model_json_schema()
    for name, field in patch["properties"].items():
        assert field["default"] is None, name
        assert {"type": "null"} in field["anyOf"], name
        assert _values(field) == _values(create["properties"][name]), name


@pytest.mark.parametrize(
    "body",
    [{"max_retries": 101}, {"queue": ""}, {"timeout_seconds": 0}, {"misfire": "often"}, {"tiers": ["hourly"]}],
)
def test_a_patch_out_of_the_task_models_bounds_is_refused(body):
    with pytest.raises(ValidationError):
        TaskPatch.model_validate(body)


def test_a_patch_sends_only_what_it_sets_and_may_set_null():
    patch = TaskPatch.model_validate({"after": None, "max_retries": 3})
    assert patch.model_dump(exclude_unset=True) == {"after": None, "max_retries": 3}

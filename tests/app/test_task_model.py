"""A task's fields come from one model, ``TaskSpec``: the row mapping is derived from it."""

from __future__ import annotations

from upkeep.app.views import SPEC_COLUMNS, apply_spec, task_spec_of
from upkeep.engine.taskspec import TaskSpec
from upkeep.store.models import ScheduledTask


def test_every_field_of_the_task_model_has_a_column_of_the_task_table():
    stored = {"name", "expect_success_within", *SPEC_COLUMNS}
    assert stored == set(TaskSpec.model_fields)
    columns = set(ScheduledTask.__table__.columns.keys())
    assert set(SPEC_COLUMNS.values()) <= columns
    assert {"name", "expect_success_within_seconds"} <= columns


def test_a_spec_written_to_a_row_reads_back_as_the_same_spec():
    spec = TaskSpec(
        name="nightly",
        type="debug.noop",
        description="a task",
        schedule="0 3 * * *",
        timezone="Europe/Zagreb",
        tiers=["daily"],
        concurrency="replace",
        misfire="run_once",
        locks=["db"],
        windows=["Sun 02:00-05:00"],
        max_retries=2,
        timeout_seconds=60.0,
        queue="host-a",
        expect_success_within="26h",
        ping_url="https://hc.example/ping/1",
    )
    row = ScheduledTask(name=spec.name)
    apply_spec(row, spec)
    back = task_spec_of(row)
    assert back["expect_success_within"] == f"{26 * 3600}s"
    expected = spec.model_dump(mode="json", exclude={"expect_success_within"})
    assert {k: v for k, v in back.items() if k != "expect_success_within"} == expected

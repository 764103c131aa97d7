"""schemathesis against /openapi.json with an admin key: no 5xx, no response violating the schema.

The store holds only debug.* tasks, command tasks cannot be created through the API, and no
executor runs in this test: runs that fuzzing triggers are only queued, so nothing runs on the host.
The SSE stream is left out (a queued run's stream stays open until the run ends); its behaviour is
tested in test_sse.py.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _env import make_env  # noqa: E402

from upkeep.store.db import Store  # noqa: E402
from upkeep.store.models import Run  # noqa: E402


def build_app(tmp: Path):
    """An app on a fresh store holding only debug.* tasks and one finished run."""
    store = Store(f"sqlite:///{tmp / 'upkeep.db'}")
    store.upgrade()
    env = make_env(tmp, store)
    svc = env.upkeep
    svc.create_task({"name": "noop", "type": "debug.noop", "schedule": "@every 1h"}, actor="test")
    svc.create_task({"name": "1", "type": "debug.sleep", "config": {"seconds": 0.1}}, actor="test")
    svc.create_task({"name": "fail", "type": "debug.fail", "enabled": False}, actor="test")
    now = datetime.now(UTC)
    with store.write() as s:
        s.add(
            Run(
                task_id=1,
                task_name="noop",
                task_type="debug.noop",
                status="completed",
                outcome="ok",
                created_at=now - timedelta(minutes=1),
                due_at=now,
                started_at=now,
                finished_at=now,
            )
        )
    return env


# schemathesis' lazy fixture loader does not work with pytest 9, so the app is built at import,
# in a temporary directory removed when the module's tests end.
TMP = Path(tempfile.mkdtemp(prefix="upkeep-fuzz-"))
ENV = build_app(TMP)
schema = schemathesis.openapi.from_asgi("/openapi.json", ENV.app).exclude(path_regex=r"/events/stream$")


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    ENV.client.close()
    ENV.store.dispose()
    shutil.rmtree(TMP, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=10,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_openapi_schema(case):
    # Schema-valid input may still be rejected with 422 by semantic validation (cron syntax, time
    # zones, a handler's config), so the "positive data is accepted" check does not apply.
    case.call_and_validate(
        headers={"Authorization": f"Bearer {ENV.tokens['admin']}"},
        excluded_checks=[positive_data_acceptance],
    )

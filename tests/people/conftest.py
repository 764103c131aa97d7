from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "api"))
sys.path.insert(0, str(Path(__file__).parent.parent / "notify"))

from _env import ApiEnv, make_env  # noqa: E402


@pytest.fixture
def api(tmp_path, sqlite_store) -> ApiEnv:
    env = make_env(tmp_path, sqlite_store)
    yield env
    env.client.close()

"""An upkeep app on a real SQLite store with one key per role, for API and page tests."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from upkeep.api.app import create_app
from upkeep.auth import create_key
from upkeep.settings import Settings
from upkeep.store.db import Store

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ROLES = ("viewer", "operator", "admin")


@dataclass
class ApiEnv:
    settings: Settings
    store: Store
    app: object
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}

    def get(self, path: str, role: str | None = "admin", **kwargs):
        return self.client.get(path, headers=self.headers(role), **kwargs)

    def post(self, path: str, role: str | None = "admin", **kwargs):
        return self.client.post(path, headers=self.headers(role), **kwargs)

    def patch(self, path: str, role: str | None = "admin", **kwargs):
        return self.client.patch(path, headers=self.headers(role), **kwargs)

    def delete(self, path: str, role: str | None = "admin", **kwargs):
        return self.client.delete(path, headers=self.headers(role), **kwargs)

    @property
    def upkeep(self):
        return self.app.state.upkeep


def make_env(tmp_path: Path, store: Store) -> ApiEnv:
    settings = Settings(config=tmp_path / "upkeep.yaml", database_url=store.url)
    app = create_app(settings, store=store)
    client = TestClient(app, follow_redirects=False)
    env = ApiEnv(settings=settings, store=store, app=app, client=client)
    for role in ROLES:
        _view, token = create_key(store, name=f"{role}-key", role=role)
        env.tokens[role] = token
    return env


class LiveServer:
    """The app served by uvicorn on a free port in a thread, optionally with the embedded executor
    and the scheduler running as in ``upkeep serve``."""

    def __init__(self, env: ApiEnv, *, engine: bool = False, workers: int = 2):
        import threading

        import uvicorn

        from support.servers import free_port

        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(env.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="uvicorn")
        self.parts: list = []
        if engine:
            from upkeep.app.run_services import RunServices
            from upkeep.engine.pool import EmbeddedExecutor
            from upkeep.engine.scheduler import Scheduler

            self.parts = [
                Scheduler(env.store, env.settings),
                EmbeddedExecutor(env.settings, env.store, size=workers, services=RunServices),
            ]

    def __enter__(self) -> LiveServer:
        from support.servers import wait_for_port

        for part in self.parts:
            part.start()
        self.thread.start()
        wait_for_port(self.port)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        for part in reversed(self.parts):
            part.stop()

"""Fixtures for the CLI tests: an isolated working directory and an in-process runner."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from upkeep.cli.main import app
from upkeep.store.models import Base

SRC = Path(__file__).resolve().parents[2] / "src"


def dump_store(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, to compare a store before and after a command."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            existing = set(sa.inspect(conn).get_table_names())
            return {
                table.name: sorted(map(tuple, conn.execute(sa.select(table)).all()), key=repr)
                for table in Base.metadata.sorted_tables
                if table.name in existing
            }
    finally:
        engine.dispose()


@dataclass
class Cli:
    root: Path
    runner: CliRunner

    @property
    def config(self) -> Path:
        return self.root / "upkeep.yaml"

    @property
    def data_dir(self) -> Path:
        return self.root / ".upkeep"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'upkeep.db'}"

    def __call__(self, *args: str, expect: int | None = 0, input: str | None = None):
        result = self.runner.invoke(app, list(args), input=input)
        if expect is not None:
            assert result.exit_code == expect, (
                f"exit {result.exit_code} != {expect}\nstdout: {result.stdout}\nstderr: {result.stderr}"
                f"\nexception: {result.exception!r}"
            )
        return result

    def write(self, text: str) -> None:
        self.config.write_text(text)

    def dump(self) -> dict[str, list[tuple]]:
        return dump_store(self.db_url)


@pytest.fixture
def cli(tmp_path, monkeypatch) -> Cli:
    for key in list(os.environ):
        if key.startswith("UPKEEP_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("UPKEEP_CONFIG", str(tmp_path / "upkeep.yaml"))
    monkeypatch.setenv("UPKEEP_HEARTBEAT_SECONDS", "1")
    monkeypatch.chdir(tmp_path)
    return Cli(root=tmp_path, runner=CliRunner())


@pytest.fixture
def subprocess_env(tmp_path) -> dict[str, str]:
    """Environment for real `python -m upkeep.cli.main` processes (no TTY: stdin/stdout are pipes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPKEEP_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p)
    env["UPKEEP_CONFIG"] = str(tmp_path / "upkeep.yaml")
    return env

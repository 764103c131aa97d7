"""Inserting a run that a partial unique index allows once (a slot's run, a dependent run)."""

from __future__ import annotations

import functools

import sqlalchemy as sa

from upkeep.store.run_tables import runs

RUNS = runs


@functools.cache
def insert_once(dialect: str, unique: tuple[str, ...], origin: str) -> sa.Insert:
    """INSERT INTO runs that leaves a row alone when a run of ``origin`` with the same ``unique``
    columns exists; returns the id and ``unique`` columns of the rows it created. One statement per
    shape whatever the row count: built, hashed and compiled once."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return (
        insert(RUNS)
        .on_conflict_do_nothing(index_elements=list(unique), index_where=sa.text(f"origin = '{origin}'"))
        .returning(RUNS.c.id, *(RUNS.c[name] for name in unique))
    )

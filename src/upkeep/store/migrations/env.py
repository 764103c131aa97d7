"""Alembic environment: upkeep always passes the connection in (see ``Store.upgrade``)."""

from alembic import context

from upkeep.store.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when alembic is run by hand
    raise SystemExit("run migrations with `upkeep db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
context.run_migrations()

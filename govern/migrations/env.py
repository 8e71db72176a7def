"""Alembic environment: runs on the connection govern hands it."""

from alembic import context
from sqlmodel import SQLModel

import govern.models  # noqa: F401  (registers every table on SQLModel.metadata)

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("govern runs its migrations on a connection it provides: use 'govern db upgrade'")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

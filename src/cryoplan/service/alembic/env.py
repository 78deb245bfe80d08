"""Alembic environment: runs the migrations on the connection that cryoplan.service.db.migrate passes in."""

from alembic import context

from cryoplan.service.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

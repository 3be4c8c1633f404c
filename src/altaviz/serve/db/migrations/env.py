"""Alembic environment: configured programmatically by `altaviz.serve.db.migrate` (there is no alembic.ini).

The caller passes an open SQLAlchemy connection in `config.attributes["connection"]`. Migrations run in one
transaction that first takes an advisory lock, so two processes migrating the same database at once serialise
instead of racing on `CREATE TABLE`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

MIGRATION_LOCK_KEY = 0x616C7476  # "altv": arbitrary, stable advisory-lock key

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("altaviz migrations run online only, through altaviz.serve.db.migrate.migrate(url)")

context.configure(connection=connection, transactional_ddl=True)
with context.begin_transaction():
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    context.run_migrations()

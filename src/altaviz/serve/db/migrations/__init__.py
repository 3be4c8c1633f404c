"""Alembic migrations of the serving database (run them with `altaviz.serve.db.migrate.migrate(url)`)."""

"""Fixtures shared by every test directory.

postgres_url        (session) URL of a real, migrated PostgreSQL database: a throwaway embedded server
                    started in a temporary directory for the test session and stopped (and deleted) at its
                    end. Set ALTAVIZ_TEST_DATABASE_URL to use an existing server instead (it is migrated and
                    its serving tables are emptied by clean_postgres_url: point it at a scratch database).
                    With pytest-xdist every worker starts its own server.
clean_postgres_url  (function) the same URL with the serving tables emptied first (day partitions dropped).
pg_data_root        (function) a fresh data root for tests that start their own embedded server.

When the tests run as root the embedded server runs as the system account `altaviz_pg` (PostgreSQL refuses
root), so the temporary directories are made traversable (mode 0755) rather than pytest's private tmp_path.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def make_data_root(prefix: str = "altaviz-test-") -> Path:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    return root


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    external = os.environ.get("ALTAVIZ_TEST_DATABASE_URL")
    if external:
        from altaviz.serve.db.migrate import migrate

        migrate(external)
        yield external
        return
    from altaviz.serve.db.server import start_embedded, stop_embedded
    from altaviz.settings import Settings

    root = make_data_root("altaviz-test-pg-")
    settings = Settings(data_root=root, database_url=None)
    try:
        yield start_embedded(settings)
    finally:
        try:
            stop_embedded(settings)
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def clean_postgres_url(postgres_url: str) -> str:
    import psycopg

    from altaviz.serve.db.migrate import TABLES

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        partitions = conn.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'sensor_readings_agg'::regclass"
        ).fetchall()
        for (name,) in partitions:
            conn.execute(f"DROP TABLE {name}")  # regclass::text is already quoted where needed
        conn.execute(f"TRUNCATE {', '.join(TABLES)}")
    return postgres_url


@pytest.fixture
def pg_data_root() -> Iterator[Path]:
    root = make_data_root()
    try:
        yield root
    finally:
        from altaviz.serve.db.server import stop_embedded
        from altaviz.settings import Settings

        try:
            stop_embedded(Settings(data_root=root, database_url=None))
        finally:
            shutil.rmtree(root, ignore_errors=True)

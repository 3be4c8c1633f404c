"""Schema migrations of the serving database: Alembic, configured in code (no alembic.ini).

`migrate(url)` brings a database to the newest revision. It first asks the database (through psycopg,
without importing Alembic, which costs most of a second) whether it is already at `HEAD_REVISION`; only
otherwise does it run `alembic upgrade head`. A test keeps `HEAD_REVISION` equal to the head of the shipped
scripts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from altaviz.errors import AltavizError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
HEAD_REVISION = "0004"
# Columns of `ml_anomaly_predictions` (migration 0002) and the PostgreSQL types a COPY stages them as; shared by
# the batch scorer and the stream processor. `sensor_values` travels as text and is cast to jsonb on insert.
ML_ANOMALY_PREDICTION_COLUMNS = {
    "compressor_id": "text",
    "timestamp": "timestamptz",
    "sensor_values": "text",
    "is_anomaly": "bool",
    "anomaly_score": "float8",
    "rule_based_anomaly": "bool",
    "rule_status": "text",
    "model_version": "text",
}
TABLES = (
    "compressors",
    "sensor_readings_agg",
    "alert_history",
    "data_quality_metrics",
    "rul_predictions",
    "ml_anomaly_predictions",
    "sensor_readings",
    "sensor_aggregates",
    "stream_progress",
)
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")


class MigrationError(AltavizError):
    """The database could not be reached or brought to the newest schema."""


def redact(url: str) -> str:
    """The URL with any password replaced by ***, for messages."""
    return _PASSWORD.sub(r"\1***@", url)


def sqlalchemy_url(url: str) -> str:
    """`postgresql://...` (libpq style) -> `postgresql+psycopg://...` for SQLAlchemy."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise MigrationError(f"database URL {redact(url)!r}: expected a postgresql:// URL")


def libpq_url(url: str) -> str:
    """The URL psycopg understands (drops a SQLAlchemy `+driver` suffix)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise MigrationError(f"database URL {redact(url)!r}: expected a postgresql:// URL")
    return "postgresql://" + rest


def current_revision(url: str) -> str | None:
    """The revision recorded in the database, or None when it was never migrated."""
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=10, autocommit=True) as conn:
            if conn.execute("SELECT to_regclass('alembic_version')").fetchone()[0] is None:  # type: ignore[index]
                return None
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            return None if row is None else str(row[0])
    except psycopg.OperationalError as exc:
        raise MigrationError(f"database {redact(url)}: expected a reachable PostgreSQL server, got {exc}") from exc


def alembic_config() -> Config:
    """Alembic configuration pointing at the migrations shipped in the package."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def script_head() -> str:
    """The head revision of the shipped migration scripts."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise MigrationError(f"migrations in {MIGRATIONS_DIR}: expected at least one revision, got none")
    return head


def migrate(url: str) -> str:
    """Upgrade the database at `url` to the newest revision; return that revision. Safe to call repeatedly."""
    if current_revision(url) == HEAD_REVISION:
        return HEAD_REVISION
    from alembic import command
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    cfg = alembic_config()
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
            connection.commit()
    except Exception as exc:
        raise MigrationError(
            f"database {redact(url)}: expected to migrate to revision {HEAD_REVISION}, got {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        engine.dispose()
    got = current_revision(url)
    if got != HEAD_REVISION:
        raise MigrationError(f"database {redact(url)}: expected revision {HEAD_REVISION} after upgrade, got {got}")
    return got

"""Alembic migrations: the shipped head, the created tables, idempotent upgrades, downgrade + upgrade."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from altaviz.serve.db.migrate import (
    HEAD_REVISION,
    TABLES,
    MigrationError,
    current_revision,
    libpq_url,
    migrate,
    script_head,
    sqlalchemy_url,
)

EXPECTED_COLUMNS = {
    "compressors": [
        "compressor_id",
        "model",
        "rated_horsepower",
        "install_date",
        "station_id",
        "latitude",
        "longitude",
        "updated_at",
    ],
    "sensor_readings_agg": ["compressor_id", "sensor", "hour_start", "mean", "min", "max", "count"],
    "alert_history": [
        "compressor_id",
        "hour_start",
        "sensor",
        "severity",
        "value",
        "threshold",
        "readings",
        "first_seen",
    ],
    "data_quality_metrics": ["date", "layer", "metric", "value", "details", "computed_at"],
    "rul_predictions": [
        "compressor_id",
        "as_of",
        "rul_days",
        "p_fail_7d",
        "p_fail_14d",
        "p_fail_30d",
        "model_version",
        "scored_at",
    ],
    "ml_anomaly_predictions": [
        "compressor_id",
        "timestamp",
        "sensor_values",
        "is_anomaly",
        "anomaly_score",
        "rule_based_anomaly",
        "rule_status",
        "model_version",
        "scored_at",
    ],
    "sensor_readings": [
        "compressor_id",
        "timestamp",
        "vibration_mms",
        "discharge_temp_f",
        "suction_pressure_psi",
        "discharge_pressure_psi",
        "horsepower",
        "gas_flow_mcfd",
        "alert_mask",
        "kafka_partition",
        "kafka_offset",
        "published_at",
        "stored_at",
    ],
    "sensor_aggregates": [
        "window_start",
        "window_end",
        "compressor_id",
        "sensor",
        "avg",
        "min",
        "max",
        "stddev",
        "count",
        "anomaly_count",
        "computed_at",
    ],
    "stream_progress": ["consumer_group", "topic", "partition", "next_offset", "watermark", "updated_at"],
}
PRIMARY_KEYS = {
    "compressors": ["compressor_id"],
    "sensor_readings_agg": ["compressor_id", "sensor", "hour_start"],
    "alert_history": ["compressor_id", "sensor", "hour_start", "severity"],
    "data_quality_metrics": ["date", "layer", "metric"],
    "rul_predictions": ["compressor_id", "as_of"],
    "ml_anomaly_predictions": ["compressor_id", "timestamp"],
    "sensor_readings": ["timestamp", "compressor_id"],
    "sensor_aggregates": ["compressor_id", "sensor", "window_start"],
    "stream_progress": ["consumer_group", "topic", "partition"],
}


def test_head_constant_matches_the_scripts():
    assert script_head() == HEAD_REVISION


def test_tables_columns_and_keys(postgres_url):
    assert set(EXPECTED_COLUMNS) == set(TABLES)
    with psycopg.connect(postgres_url) as conn:
        for table, columns in EXPECTED_COLUMNS.items():
            got = [
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                    "ORDER BY ordinal_position",
                    (table,),
                )
            ]
            assert got == columns, table
            key = conn.execute(
                "SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_index i "
                "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                "WHERE i.indrelid = %s::regclass AND i.indisprimary",
                (table,),
            ).fetchone()[0]
            assert key == PRIMARY_KEYS[table], table
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'sensor_readings_agg'").fetchone()[0]
        assert kind == "p"  # partitioned by day


@pytest.fixture
def scratch_db(postgres_url):
    name = "altaviz_migration_test"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield postgres_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_fresh_upgrade_is_idempotent_and_reversible(scratch_db):
    from alembic import command
    from sqlalchemy import create_engine

    from altaviz.serve.db.migrate import alembic_config

    assert current_revision(scratch_db) is None
    assert migrate(scratch_db) == HEAD_REVISION
    assert migrate(scratch_db) == HEAD_REVISION
    engine = create_engine(sqlalchemy_url(scratch_db))
    with engine.connect() as connection:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "base")
        connection.commit()
    engine.dispose()
    with psycopg.connect(scratch_db) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY(%s)",
            (list(TABLES),),
        ).fetchone()[0]
    assert left == 0
    assert current_revision(scratch_db) is None
    assert migrate(scratch_db) == HEAD_REVISION


def test_url_helpers_and_errors():
    assert sqlalchemy_url("postgresql://u@h:1/d") == "postgresql+psycopg://u@h:1/d"
    assert sqlalchemy_url("postgres://u@h:1/d") == "postgresql+psycopg://u@h:1/d"
    assert libpq_url("postgresql+psycopg://u:p@h:1/d") == "postgresql://u:p@h:1/d"
    with pytest.raises(MigrationError, match="expected a postgresql://"):
        sqlalchemy_url("mysql://u:secret@h/d")
    with pytest.raises(MigrationError) as info:
        migrate("postgresql://u:secret@127.0.0.1:1/d")
    assert "secret" not in str(info.value) and "reachable" in str(info.value)

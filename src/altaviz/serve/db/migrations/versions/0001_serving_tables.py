"""Serving tables: compressors, hourly sensor aggregates, alert history, data-quality metrics.

Revision ID: 0001
Revises:
Create Date: 2026-05-09

Plain SQL that runs on PostgreSQL 15 through 18. The asset id column is called `compressor_id` in every
table (naming of the serving schema); any profile's id column maps onto it.

`sensor_readings_agg` (millions of rows) is partitioned by day on `hour_start`: `export_day` builds a day's
partition as a fresh table (COPY, then the primary-key index is built in one sorted pass) and swaps it in for
the old one in the same transaction. That is about twice as fast as inserting into a live B-tree, a re-export
costs the same as the first export, and replaced rows leave no dead tuples behind. Partitions are named
`sensor_readings_agg_pYYYYMMDD` and created by the exporter, not here.

The small tables are plain: `alert_history` (a B-tree on `hour_start` for the per-day delete and for "recent
alerts" queries) and `data_quality_metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE compressors (
            compressor_id    text PRIMARY KEY,
            model            text,
            rated_horsepower double precision,
            install_date     date,
            station_id       text,
            latitude         double precision,
            longitude        double precision,
            updated_at       timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE sensor_readings_agg (
            compressor_id text             NOT NULL,
            sensor        text             NOT NULL,
            hour_start    timestamptz      NOT NULL,
            mean          double precision NOT NULL,
            min           double precision NOT NULL,
            max           double precision NOT NULL,
            count         integer          NOT NULL,
            PRIMARY KEY (compressor_id, sensor, hour_start)
        ) PARTITION BY RANGE (hour_start)
        """
    )
    op.execute(
        """
        CREATE TABLE alert_history (
            compressor_id text             NOT NULL,
            hour_start    timestamptz      NOT NULL,
            sensor        text             NOT NULL,
            severity      text             NOT NULL CHECK (severity IN ('warning', 'critical')),
            value         double precision NOT NULL,
            threshold     double precision NOT NULL,
            readings      integer          NOT NULL CHECK (readings > 0),
            first_seen    timestamptz      NOT NULL,
            PRIMARY KEY (compressor_id, sensor, hour_start, severity)
        )
        """
    )
    op.execute("CREATE INDEX alert_history_hour_start_idx ON alert_history (hour_start)")
    op.execute(
        """
        CREATE TABLE data_quality_metrics (
            date        date        NOT NULL,
            layer       text        NOT NULL,
            metric      text        NOT NULL,
            value       double precision,
            details     jsonb,
            computed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (date, layer, metric)
        )
        """
    )


def downgrade() -> None:
    for table in ("data_quality_metrics", "alert_history", "sensor_readings_agg", "compressors"):
        op.execute(f"DROP TABLE IF EXISTS {table}")

"""Streaming: raw accepted readings, 1-minute window aggregates, the processor's per-partition progress.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

`sensor_readings` holds every reading the stream processor accepted, one row per (asset, timestamp): the
processor inserts with ON CONFLICT DO NOTHING, so a redelivered message changes nothing. `kafka_partition` /
`kafka_offset` say which message a row came from (a redelivery is told apart from a true duplicate by it);
`alert_mask` has bit i set when sensor i (in column order below) is at warning or critical. The sensor columns
are those of the shipped compressor profile; the processor checks the profile's sensors against them.

`sensor_aggregates` holds one row per (asset, sensor, window): avg/min/max/stddev (sample)/count over the
window's readings and how many of them had that sensor at warning or critical. Rows are written once, when the
watermark of the asset's partition passes the window end plus the grace period (`computed_at`).

`stream_progress` is the processor's checkpoint, written in the same transaction as the rows: the next offset
to read and the event-time watermark of each (consumer group, topic, partition). A restarted processor resumes
from it, so window decisions (late or not) replay exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE sensor_readings (
            compressor_id          text             NOT NULL,
            timestamp              timestamptz      NOT NULL,
            vibration_mms          double precision NOT NULL,
            discharge_temp_f       double precision NOT NULL,
            suction_pressure_psi   double precision NOT NULL,
            discharge_pressure_psi double precision NOT NULL,
            horsepower             double precision NOT NULL,
            gas_flow_mcfd          double precision NOT NULL,
            alert_mask             integer          NOT NULL DEFAULT 0,
            kafka_partition        integer          NOT NULL,
            kafka_offset           bigint           NOT NULL,
            published_at           timestamptz      NOT NULL,
            stored_at              timestamptz      NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (compressor_id, timestamp)
        )
        """
    )
    op.execute("CREATE INDEX sensor_readings_partition_time_idx ON sensor_readings (kafka_partition, timestamp)")
    op.execute(
        """
        CREATE TABLE sensor_aggregates (
            window_start  timestamptz      NOT NULL,
            window_end    timestamptz      NOT NULL,
            compressor_id text             NOT NULL,
            sensor        text             NOT NULL,
            avg           double precision NOT NULL,
            min           double precision NOT NULL,
            max           double precision NOT NULL,
            stddev        double precision,
            count         integer          NOT NULL CHECK (count > 0),
            anomaly_count integer          NOT NULL,
            computed_at   timestamptz      NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (compressor_id, sensor, window_start)
        )
        """
    )
    op.execute("CREATE INDEX sensor_aggregates_window_start_idx ON sensor_aggregates (window_start)")
    op.execute(
        """
        CREATE TABLE stream_progress (
            consumer_group text        NOT NULL,
            topic          text        NOT NULL,
            partition      integer     NOT NULL,
            next_offset    bigint      NOT NULL,
            watermark      timestamptz,
            updated_at     timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer_group, topic, partition)
        )
        """
    )


def downgrade() -> None:
    for table in ("stream_progress", "sensor_aggregates", "sensor_readings"):
        op.execute(f"DROP TABLE IF EXISTS {table}")

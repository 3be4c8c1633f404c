"""ML predictions: remaining useful life per asset and as-of time, anomaly scores per reading.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

`rul_predictions` holds one row per (asset, as_of): re-scoring the same as_of replaces it (idempotent).
`ml_anomaly_predictions` holds one row per (asset, timestamp): batch scoring and the streaming processor both
upsert into it. Sensor values are kept as jsonb so any asset profile fits the same table.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE rul_predictions (
            compressor_id text             NOT NULL,
            as_of         timestamptz      NOT NULL,
            rul_days      double precision NOT NULL,
            p_fail_7d     double precision NOT NULL CHECK (p_fail_7d BETWEEN 0 AND 1),
            p_fail_14d    double precision NOT NULL CHECK (p_fail_14d BETWEEN 0 AND 1),
            p_fail_30d    double precision NOT NULL CHECK (p_fail_30d BETWEEN 0 AND 1),
            model_version text             NOT NULL,
            scored_at     timestamptz      NOT NULL DEFAULT now(),
            PRIMARY KEY (compressor_id, as_of)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE ml_anomaly_predictions (
            compressor_id      text             NOT NULL,
            timestamp          timestamptz      NOT NULL,
            sensor_values      jsonb            NOT NULL,
            is_anomaly         boolean          NOT NULL,
            anomaly_score      double precision NOT NULL,
            rule_based_anomaly boolean          NOT NULL,
            rule_status        text,
            model_version      text             NOT NULL,
            scored_at          timestamptz      NOT NULL DEFAULT now(),
            PRIMARY KEY (compressor_id, timestamp)
        )
        """
    )
    op.execute("CREATE INDEX ml_anomaly_predictions_timestamp_idx ON ml_anomaly_predictions (timestamp)")


def downgrade() -> None:
    for table in ("ml_anomaly_predictions", "rul_predictions"):
        op.execute(f"DROP TABLE IF EXISTS {table}")

"""The PostgreSQL sink of the stream processor: raw readings, window rows, progress, in one transaction.

One micro-batch is one transaction:
  1. binary COPY of the accepted readings into a session temp table
  2. true duplicates removed and returned: rows whose (asset id, timestamp) is already stored from a different
     message (partition, offset); a row stored from the same message is a redelivery and is simply skipped
  3. INSERT ... ON CONFLICT DO NOTHING into `sensor_readings` (idempotent on asset id + timestamp)
  4. the windows the batch closed, per partition, aggregated from the stored rows into `sensor_aggregates`
     (ON CONFLICT DO NOTHING: a replay writes identical rows)
  5. ML predictions upserted into `ml_anomaly_predictions` (when there are any)
  6. next offset and watermark of each partition into `stream_progress`
  7. `before_commit(duplicates)` (the processor flushes its dead-letter messages there), then COMMIT.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import polars as pl
import psycopg
from psycopg import sql

from altaviz.errors import AltavizError
from altaviz.profiles.model import Profile
from altaviz.serve.db.migrate import ML_ANOMALY_PREDICTION_COLUMNS, libpq_url, redact
from altaviz.serve.db.pgcopy import copy_chunks

RAW_TABLE = "sensor_readings"
SERVING_ID = "compressor_id"
PREDICTION_COLUMNS = ML_ANOMALY_PREDICTION_COLUMNS


class SinkError(AltavizError):
    """The serving database cannot take the stream (unreachable, or its schema does not fit the profile)."""


def _us_to_datetime(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1e6, tz=UTC)


class PgSink:
    def __init__(self, url: str, profile: Profile, group: str, topic: str, window_seconds: int) -> None:
        self.url, self.profile, self.group, self.topic = url, profile, group, topic
        self.window_seconds = window_seconds
        self.columns = {SERVING_ID: "text", "timestamp": "timestamptz"}
        self.columns |= {s: "float8" for s in profile.sensor_names}
        self.columns |= {"alert_mask": "int4", "kafka_partition": "int4", "kafka_offset": "int8"}
        self.columns |= {"published_at": "timestamptz"}
        try:
            self.conn = psycopg.connect(libpq_url(url), connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise SinkError(f"database {redact(url)}: expected a reachable PostgreSQL server, got {exc}") from exc
        self._check_schema()
        with self.conn.cursor() as cur:
            cur.execute(
                f"CREATE TEMP TABLE _sr_in (LIKE {RAW_TABLE} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )  # fmt: skip
            cur.execute(
                "CREATE TEMP TABLE _pred_in (compressor_id text, timestamp timestamptz, sensor_values text, "
                "is_anomaly boolean, anomaly_score double precision, rule_based_anomaly boolean, rule_status text, "
                "model_version text) ON COMMIT DELETE ROWS"
            )
        self.conn.commit()
        self._close_sql = self._window_sql()

    def _check_schema(self) -> None:
        got = {
            r[0]
            for r in self.conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (RAW_TABLE,)
            )
        }
        missing = [c for c in self.columns if c not in got]
        if missing:
            raise SinkError(
                f"table {RAW_TABLE} in {redact(self.url)}: expected columns for profile {self.profile.name!r} "
                f"({', '.join(self.columns)}), missing {missing}"
            )
        self.conn.rollback()

    def _window_sql(self) -> sql.Composed:
        values = sql.SQL(", ").join(
            sql.SQL("({}, r.{}, {})").format(sql.Literal(s), sql.Identifier(s), sql.Literal(1 << i))
            for i, s in enumerate(self.profile.sensor_names)
        )
        return sql.SQL(
            "INSERT INTO sensor_aggregates (window_start, window_end, compressor_id, sensor, avg, min, max, "
            "stddev, count, anomaly_count) "
            "SELECT r.w, r.w + make_interval(secs => %(win)s), r.compressor_id, v.sensor, avg(v.x), min(v.x), "
            "max(v.x), stddev_samp(v.x), count(*), count(*) FILTER (WHERE r.alert_mask & v.bit <> 0) "
            "FROM (SELECT s.*, to_timestamp(floor(extract(epoch FROM s.timestamp) / %(win)s) * %(win)s) AS w "
            "FROM sensor_readings s WHERE s.kafka_partition = %(p)s AND s.timestamp >= %(lo)s::timestamptz "
            "AND s.timestamp < %(hi)s::timestamptz) r "
            "CROSS JOIN LATERAL (VALUES {values}) AS v(sensor, x, bit) "
            "GROUP BY r.w, r.compressor_id, v.sensor "
            "ON CONFLICT (compressor_id, sensor, window_start) DO NOTHING"
        ).format(values=values)

    def fleet(self) -> pl.DataFrame:
        """The known assets (the `compressors` table), with the metadata thresholds may be relative to."""
        with self.conn.cursor() as cur:
            rows = cur.execute("SELECT compressor_id, rated_horsepower FROM compressors").fetchall()
        self.conn.rollback()
        return pl.DataFrame(
            rows, schema={self.profile.id_column: pl.String, "rated_horsepower": pl.Float64}, orient="row"
        )

    def progress(self, partitions: list[int]) -> dict[int, tuple[int, int | None]]:
        """partition -> (next offset, watermark in epoch us or None) as last committed."""
        rows = self.conn.execute(
            "SELECT partition, next_offset, watermark FROM stream_progress "
            "WHERE consumer_group = %s AND topic = %s AND partition = ANY(%s)",
            (self.group, self.topic, partitions),
        ).fetchall()
        self.conn.rollback()
        return {p: (o, None if w is None else int(w.timestamp() * 1_000_000)) for p, o, w in rows}

    def rows_since(self, partition: int, first_offset: int, last_offset: int) -> pl.DataFrame:
        """Stored rows of a partition with offsets in [first_offset, last_offset), for the bronze backfill
        (reading columns named as in the profile, plus `_partition` and `_offset`)."""
        cols = sql.SQL(", ").join(map(sql.Identifier, self.columns))
        with self.conn.cursor(binary=False) as cur:
            cur.execute(
                sql.SQL(
                    "SELECT {} FROM sensor_readings WHERE kafka_partition = %s AND kafka_offset >= %s "
                    "AND kafka_offset < %s ORDER BY kafka_offset"
                ).format(cols),
                (partition, first_offset, last_offset),
            )
            rows = cur.fetchall()
        self.conn.rollback()
        frame = pl.DataFrame(rows, schema=list(self.columns), orient="row")
        names = {"kafka_partition": "_partition", "kafka_offset": "_offset", "timestamp": self.profile.time_column}
        if SERVING_ID != self.profile.id_column:
            names[SERVING_ID] = self.profile.id_column
        return frame.rename(names)

    def _copy(self, cur: psycopg.Cursor, table: str, frame: pl.DataFrame, types: list[str]) -> None:
        stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, frame.columns))
        )
        with cur.copy(stmt) as copy:
            for chunk in copy_chunks(frame, types, table):
                copy.write(chunk)

    def write(
        self,
        accepted: pl.DataFrame,
        closes: dict[int, tuple[int | None, int]],
        progress: dict[int, tuple[int, int | None]],
        predictions: pl.DataFrame | None,
        before_commit: Callable[[pl.DataFrame], None],
    ) -> tuple[int, pl.DataFrame]:
        """Write one micro-batch (see the module doc). `closes`: partition -> (old closed mark or None, new
        closed mark), epoch us; `progress`: partition -> (next offset, watermark us). Returns (rows inserted,
        true duplicates as `_partition`, `_offset`)."""
        p = self.profile
        frame = accepted.select(
            pl.col(p.id_column).alias(SERVING_ID),
            pl.col(p.time_column).alias("timestamp"),
            *p.sensor_names,
            "alert_mask",
            pl.col("_partition").alias("kafka_partition"),
            pl.col("_offset").alias("kafka_offset"),
            pl.col("_published_at").alias("published_at"),
        )
        try:
            with self.conn.cursor() as cur:
                inserted = 0
                dups = pl.DataFrame(schema={"_partition": pl.Int32, "_offset": pl.Int64})
                if frame.height:
                    self._copy(cur, "_sr_in", frame, list(self.columns.values()))
                    cur.execute(
                        "DELETE FROM _sr_in i USING sensor_readings s WHERE s.compressor_id = i.compressor_id "
                        "AND s.timestamp = i.timestamp AND (s.kafka_partition, s.kafka_offset) IS DISTINCT FROM "
                        "(i.kafka_partition, i.kafka_offset) RETURNING i.kafka_partition, i.kafka_offset"
                    )
                    dups = pl.DataFrame(cur.fetchall(), schema=dups.schema, orient="row")
                    names = sql.SQL(", ").join(map(sql.Identifier, self.columns))
                    cur.execute(
                        sql.SQL(
                            "INSERT INTO sensor_readings ({c}) SELECT {c} FROM _sr_in ON CONFLICT DO NOTHING"
                        ).format(c=names)
                    )
                    inserted = cur.rowcount
                for part, (lo, hi) in sorted(closes.items()):
                    lo_text = "-infinity" if lo is None else _us_to_datetime(lo).isoformat()  # type: ignore[union-attr]
                    params = {"win": self.window_seconds, "p": part, "lo": lo_text, "hi": _us_to_datetime(hi)}
                    cur.execute(self._close_sql, params)
                if predictions is not None and predictions.height:
                    self._copy(cur, "_pred_in", predictions.select(list(PREDICTION_COLUMNS)), [
                        *PREDICTION_COLUMNS.values()
                    ])  # fmt: skip
                    cur.execute(
                        "INSERT INTO ml_anomaly_predictions (compressor_id, timestamp, sensor_values, is_anomaly, "
                        "anomaly_score, rule_based_anomaly, rule_status, model_version) SELECT compressor_id, "
                        "timestamp, sensor_values::jsonb, is_anomaly, anomaly_score, rule_based_anomaly, "
                        "rule_status, model_version FROM _pred_in ON CONFLICT (compressor_id, timestamp) DO UPDATE "
                        "SET sensor_values = EXCLUDED.sensor_values, is_anomaly = EXCLUDED.is_anomaly, "
                        "anomaly_score = EXCLUDED.anomaly_score, rule_based_anomaly = EXCLUDED.rule_based_anomaly, "
                        "rule_status = EXCLUDED.rule_status, model_version = EXCLUDED.model_version, "
                        "scored_at = now()"
                    )
                cur.executemany(
                    "INSERT INTO stream_progress (consumer_group, topic, partition, next_offset, watermark) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET "
                    "next_offset = EXCLUDED.next_offset, watermark = EXCLUDED.watermark, updated_at = now()",
                    [
                        (self.group, self.topic, part, nxt, _us_to_datetime(wm))
                        for part, (nxt, wm) in sorted(progress.items())
                    ],
                )
            before_commit(dups)
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        return inserted, dups

    def close(self) -> None:
        self.conn.close()

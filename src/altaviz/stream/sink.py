"""The PostgreSQL sink of the stream processor: raw readings, window rows, progress, in one transaction.

One micro-batch is one transaction:
  1. the batch's partitions' rows of `stream_progress` locked and checked against the offsets this processor
     last committed (`Fenced` when another processor of the group moved them: this one lost the partition)
  2. binary COPY of the new readings straight into `sensor_readings` (the processor has already removed the
     readings stored before, see `window_state`; a stored key all the same raises `KeyConflict`, and the
     processor then asks `stored_messages` and retries)
  3. the rows of the windows the batch closed into `sensor_aggregates` (ON CONFLICT DO NOTHING: a replay writes
     identical rows)
  4. ML predictions upserted into `ml_anomaly_predictions` (when there are any)
  5. next offset and watermark of each partition into `stream_progress`
  6. `before_commit()` (the processor flushes its dead-letter messages there), then COMMIT.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import polars as pl
import psycopg
from psycopg import sql

from altaviz.errors import AltavizError
from altaviz.lake.schema import TIME
from altaviz.profiles.model import Profile
from altaviz.serve.db.migrate import ML_ANOMALY_PREDICTION_COLUMNS, libpq_url, redact
from altaviz.serve.db.pgcopy import copy_chunks

RAW_TABLE = "sensor_readings"
SERVING_ID = "compressor_id"
PREDICTION_COLUMNS = ML_ANOMALY_PREDICTION_COLUMNS


class SinkError(AltavizError):
    """The serving database cannot take the stream (unreachable, or its schema does not fit the profile)."""


class KeyConflict(SinkError):
    """A reading the processor took for new is stored already (another consumer group, or a lost partition)."""


class Fenced(SinkError):
    """Another processor committed progress on these partitions since this one last did."""

    def __init__(self, partitions: list[int]) -> None:
        super().__init__(f"partitions {partitions}: another processor of the group committed since this one")
        self.partitions = partitions


AGGREGATE_TYPES = {
    "window_start": "timestamptz", "window_end": "timestamptz", "compressor_id": "text", "sensor": "text",
    "avg": "float8", "min": "float8", "max": "float8", "stddev": "float8", "count": "int4", "anomaly_count": "int4",
}  # fmt: skip
_INSERT_AGGREGATES = (
    "INSERT INTO sensor_aggregates ({c}) SELECT {c} FROM _agg_in "
    "ON CONFLICT (compressor_id, sensor, window_start) DO NOTHING".format(c=", ".join(AGGREGATE_TYPES))
)
_POLARS = {"text": pl.String, "timestamptz": pl.Datetime("us", "UTC"), "float8": pl.Float64, "int4": pl.Int32,
           "int8": pl.Int64}  # fmt: skip


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us_to_datetime(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


class PgSink:
    def __init__(self, url: str, profile: Profile, group: str, topic: str) -> None:
        self.url, self.profile, self.group, self.topic = url, profile, group, topic
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
                "CREATE TEMP TABLE _keys_in (compressor_id text, timestamp timestamptz, kafka_partition int4, "
                "kafka_offset int8) ON COMMIT DELETE ROWS"
            )
            cur.execute(
                "CREATE TEMP TABLE _pred_in (compressor_id text, timestamp timestamptz, sensor_values text, "
                "is_anomaly boolean, anomaly_score double precision, rule_based_anomaly boolean, rule_status text, "
                "model_version text) ON COMMIT DELETE ROWS"
            )
            cur.execute("CREATE TEMP TABLE _agg_in (LIKE sensor_aggregates INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        self.conn.commit()

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
        return {p: (o, None if w is None else (w - _EPOCH) // timedelta(microseconds=1)) for p, o, w in rows}

    def _copy(self, cur: psycopg.Cursor, table: str, frame: pl.DataFrame, types: list[str]) -> None:
        stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, frame.columns))
        )
        with cur.copy(stmt) as copy:
            for chunk in copy_chunks(frame, types, table):
                copy.write(chunk)

    def open_rows(self, partition: int, mark_us: int) -> pl.DataFrame:
        """Stored rows of a partition at or after its closed mark (its open windows), as `rows_since` names them."""
        return self._rows("kafka_partition = %s AND timestamp >= %s", (partition, _us_to_datetime(mark_us)))

    def rows_since(self, partition: int, first_offset: int, last_offset: int) -> pl.DataFrame:
        """Stored rows of a partition with offsets in [first_offset, last_offset), for the bronze backfill
        (reading columns named as in the profile, plus `alert_mask`, `_partition` and `_offset`)."""
        return self._rows(
            "kafka_partition = %s AND kafka_offset >= %s AND kafka_offset < %s", (partition, first_offset, last_offset)
        )

    def _rows(self, where: str, params: tuple) -> pl.DataFrame:
        """Selected rows through COPY ... TO STDOUT as CSV (float8 text is exact: shortest round-trip digits;
        times travel as epoch microseconds), parsed by Polars: a million rows take about a second."""
        out = [
            sql.SQL("(extract(epoch FROM {}) * 1000000)::int8").format(sql.Identifier(c))
            if t == "timestamptz"
            else sql.Identifier(c)
            for c, t in self.columns.items()
        ]
        query = sql.SQL("COPY (SELECT {} FROM sensor_readings WHERE " + where + " ORDER BY kafka_offset) TO STDOUT "
                        "(FORMAT csv)").format(sql.SQL(", ").join(out))  # fmt: skip
        buffer = bytearray()
        with self.conn.cursor() as cur:
            with cur.copy(query, params) as copy:
                for block in copy:
                    buffer += block
        self.conn.rollback()
        schema = {c: pl.Int64 if t == "timestamptz" else _POLARS[t] for c, t in self.columns.items()}
        frame = pl.read_csv(bytes(buffer), has_header=False, new_columns=list(schema), schema=schema)
        frame = frame.with_columns(pl.col(c).cast(TIME) for c, t in self.columns.items() if t == "timestamptz")
        names = {"kafka_partition": "_partition", "kafka_offset": "_offset", "timestamp": self.profile.time_column}
        if SERVING_ID != self.profile.id_column:
            names[SERVING_ID] = self.profile.id_column
        return frame.rename(names)

    def stored_messages(self, accepted: pl.DataFrame) -> pl.DataFrame:
        """For the readings of `accepted` whose (asset id, timestamp) is stored already: `_partition`, `_offset`
        of the reading and `same_message` (stored from that very message, i.e. a redelivery)."""
        p = self.profile
        keys = accepted.select(
            pl.col(p.id_column).alias(SERVING_ID), pl.col(p.time_column).alias("timestamp"),
            pl.col("_partition").alias("kafka_partition"), pl.col("_offset").alias("kafka_offset"),
        )  # fmt: skip
        schema = {"_partition": pl.Int32, "_offset": pl.Int64, "same_message": pl.Boolean}
        try:
            with self.conn.cursor() as cur:
                self._copy(cur, "_keys_in", keys, [self.columns[c] for c in keys.columns])
                rows = cur.execute(
                    "SELECT i.kafka_partition, i.kafka_offset, (s.kafka_partition, s.kafka_offset) = "
                    "(i.kafka_partition, i.kafka_offset) FROM _keys_in i JOIN sensor_readings s "
                    "ON s.compressor_id = i.compressor_id AND s.timestamp = i.timestamp"
                ).fetchall()
        finally:
            self.conn.rollback()
        return pl.DataFrame(rows, schema=schema, orient="row")

    def write(
        self,
        rows: pl.DataFrame,
        aggregates: pl.DataFrame | None,
        progress: dict[int, tuple[int, int | None]],
        expected: dict[int, int | None],
        predictions: pl.DataFrame | None,
        before_commit: Callable[[], None],
    ) -> int:
        """Write one micro-batch (see the module doc) and return the rows inserted. `rows`: new readings (none of
        them stored yet: a stored key raises `KeyConflict`); `aggregates`: the closed windows' rows;
        `progress`: partition -> (next offset, watermark us); `expected`: partition -> the next offset this
        processor last committed (None: none), checked under a row lock (`Fenced` when another processor moved it)."""
        p = self.profile
        frame = rows.select(
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
                self._fence(cur, expected)
                if frame.height:
                    try:
                        self._copy(cur, RAW_TABLE, frame, list(self.columns.values()))
                    except psycopg.errors.UniqueViolation as exc:
                        raise KeyConflict(f"table {RAW_TABLE}: a reading of the batch is stored already") from exc
                if aggregates is not None and aggregates.height:
                    self._copy(cur, "_agg_in", aggregates, list(AGGREGATE_TYPES.values()))
                    cur.execute(_INSERT_AGGREGATES)
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
            before_commit()
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        return frame.height

    def _fence(self, cur: psycopg.Cursor, expected: dict[int, int | None]) -> None:
        rows = cur.execute(
            "SELECT partition, next_offset FROM stream_progress WHERE consumer_group = %s AND topic = %s "
            "AND partition = ANY(%s) ORDER BY partition FOR UPDATE",
            (self.group, self.topic, sorted(expected)),
        ).fetchall()
        stored = dict(rows)
        moved = sorted(q for q, nxt in expected.items() if stored.get(q) != nxt)
        if moved:
            raise Fenced(moved)

    def close(self) -> None:
        self.conn.close()

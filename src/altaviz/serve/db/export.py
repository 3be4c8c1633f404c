"""Bulk export of serving rows into PostgreSQL with binary COPY (psycopg 3).

export_compressors  upsert the fleet metadata (one row per asset; `updated_at` moves only when a row changes).
export_day          replace everything the serving tables hold for one UTC date, in one transaction, so that
                    exporting a date again leaves exactly the new rows: no duplicates, nothing stale.
                    sensor_readings_agg: the date's partition is rebuilt as a fresh table (COPY FREEZE, then
                    the primary key built in one sorted pass) and swapped in for the old one (DROP + ATTACH
                    PARTITION); alert_history: DELETE hour_start in [day, day + 1) + COPY;
                    data_quality_metrics: DELETE date = day (all layers) + INSERT. Pass None for a frame to
                    leave that table untouched.

Exports of the same date serialise on an advisory lock; exports of different dates run their COPY phases in
parallel and meet only at the partition swap, which briefly takes an exclusive lock on the parent table when
a partition is replaced (readers wait for that moment, not for the COPY).

The frames carry the table columns produced by `altaviz.serve.publish`; extra columns are ignored; missing
columns, nulls, duplicate keys and rows outside the date are errors, raised before anything is written.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import polars as pl
import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from altaviz.errors import AltavizError
from altaviz.serve.db.migrate import libpq_url, redact
from altaviz.serve.db.pgcopy import copy_chunks

COMPRESSOR_COLUMNS = {
    "compressor_id": "text",
    "model": "text",
    "rated_horsepower": "float8",
    "install_date": "date",
    "station_id": "text",
    "latitude": "float8",
    "longitude": "float8",
}
AGG_COLUMNS = {
    "compressor_id": "text",
    "sensor": "text",
    "hour_start": "timestamptz",
    "mean": "float8",
    "min": "float8",
    "max": "float8",
    "count": "int4",
}
ALERT_COLUMNS = {
    "compressor_id": "text",
    "hour_start": "timestamptz",
    "sensor": "text",
    "severity": "text",
    "value": "float8",
    "threshold": "float8",
    "readings": "int4",
    "first_seen": "timestamptz",
}
QUALITY_COLUMNS = {"date": "date", "layer": "text", "metric": "text", "value": "float8", "details": "text"}
SEVERITIES = ("warning", "critical")
AGG_KEY = ("compressor_id", "sensor", "hour_start")
_SQL_TYPES = {"text": "text", "float8": "double precision", "int4": "integer", "timestamptz": "timestamptz"}
_EXPORT_LOCK = 0x616C7465  # advisory-lock namespace of export_day ("alte"); the second key is the date


class ExportError(AltavizError):
    """Rows could not be exported to the serving database."""


@dataclass(frozen=True)
class DayExport:
    """What `export_day` did: rows deleted and rows written per table."""

    day: date
    deleted: dict[str, int]
    written: dict[str, int]


def _columns(frame: pl.DataFrame, columns: dict[str, str], table: str) -> pl.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ExportError(f"{table} frame: expected columns {list(columns)}, missing {missing}, got {frame.columns}")
    return frame.select(list(columns))


def _check_not_null(frame: pl.DataFrame, columns: list[str], table: str) -> None:
    for c in columns:
        n = frame.get_column(c).null_count()
        if n:
            raise ExportError(f"{table} frame: expected no null {c!r}, got {n} null rows")


def _check_window(frame: pl.DataFrame, column: str, day: date, table: str) -> None:
    if frame.is_empty():
        return
    start = datetime.combine(day, time(), tzinfo=UTC)
    ts = frame.get_column(column)
    if isinstance(ts.dtype, pl.Datetime) and ts.dtype.time_zone is None:
        ts = ts.dt.replace_time_zone("UTC")
    outside = ts.is_null() | (ts < start) | (ts >= start + timedelta(days=1))
    bad = int(outside.sum())
    if bad:
        first = ts.filter(outside).head(1).to_list()[0]
        raise ExportError(
            f"{table} frame: expected every {column} within {day} UTC (the exported date), got {bad} rows "
            f"outside, e.g. {first}"
        )


def _check_unique(frame: pl.DataFrame, key: list[str], table: str) -> None:
    dupes = frame.height - frame.select(key).n_unique()
    if dupes:
        raise ExportError(f"{table} frame: expected unique {key}, got {dupes} duplicate rows")


def _copy(cur: psycopg.Cursor, table: str, frame: pl.DataFrame, columns: dict[str, str], freeze: bool = False) -> int:
    """COPY the frame's rows (columns in `columns` order) into `table`; return the row count."""
    if frame.is_empty():
        return 0
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY{})").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", FREEZE" if freeze else ""),
    )
    with cur.copy(stmt, writer=QueuedLibpqWriter(cur)) as copy:
        for chunk in copy_chunks(frame, list(columns.values()), table):
            copy.write(chunk)
    return frame.height


def connect(url: str) -> psycopg.Connection:
    """A connection for `export_day(..., conn=)` (one per run of dates saves a server backend start per date)."""
    try:
        return psycopg.connect(libpq_url(url), connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise ExportError(f"database {redact(url)}: expected a reachable PostgreSQL server, got {exc}") from exc


def export_compressors(url: str, metadata_df: pl.DataFrame) -> int:
    """Insert new assets and update changed ones; return how many rows were inserted or changed."""
    frame = _columns(metadata_df, COMPRESSOR_COLUMNS, "compressors")
    _check_not_null(frame, ["compressor_id"], "compressors")
    _check_unique(frame, ["compressor_id"], "compressors")
    cols = list(COMPRESSOR_COLUMNS)
    updates = [c for c in cols if c != "compressor_id"]
    upsert = sql.SQL(
        "INSERT INTO compressors ({cols}) SELECT {cols} FROM _compressors_in "
        "ON CONFLICT (compressor_id) DO UPDATE SET {sets}, updated_at = now() "
        "WHERE ({old}) IS DISTINCT FROM ({new})"
    ).format(
        cols=sql.SQL(", ").join(map(sql.Identifier, cols)),
        sets=sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in updates),
        old=sql.SQL(", ").join(sql.SQL("compressors.{}").format(sql.Identifier(c)) for c in updates),
        new=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in updates),
    )
    try:
        with connect(url) as conn, conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE _compressors_in (LIKE compressors INCLUDING DEFAULTS) ON COMMIT DROP")
            _copy(cur, "_compressors_in", frame, COMPRESSOR_COLUMNS)
            cur.execute(upsert)
            return cur.rowcount
    except psycopg.Error as exc:
        raise ExportError(f"table compressors in {redact(url)}: expected the upsert to succeed, got {exc}") from exc


def export_day(
    url: str,
    day: date,
    aggregates_df: pl.DataFrame | None,
    alerts_df: pl.DataFrame | None,
    quality_df: pl.DataFrame | None,
    *,
    conn: psycopg.Connection | None = None,
) -> DayExport:
    """Replace the serving rows of one UTC date (see the module docstring); atomic and idempotent. With `conn`
    (from `connect(url)`, not in autocommit mode) the date is one transaction on that connection; without, on a
    new connection of its own."""
    agg = _valid_aggregates(aggregates_df, day) if aggregates_df is not None else None
    alerts = _valid_alerts(alerts_df, day) if alerts_df is not None else None
    quality = _valid_quality(quality_df, day) if quality_df is not None else None
    start = datetime.combine(day, time(), tzinfo=UTC)
    window = (start, start + timedelta(days=1))
    deleted: dict[str, int] = {}
    written: dict[str, int] = {}
    try:
        with ExitStack() as stack:
            conn = conn if conn is not None else stack.enter_context(connect(url))
            stack.enter_context(conn.transaction())
            cur = stack.enter_context(conn.cursor())
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_EXPORT_LOCK, day.toordinal()))
            if agg is not None:
                deleted["sensor_readings_agg"], written["sensor_readings_agg"] = _swap_partition(cur, day, agg)
            if alerts is not None:
                cur.execute("DELETE FROM alert_history WHERE hour_start >= %s AND hour_start < %s", window)
                deleted["alert_history"] = cur.rowcount
                written["alert_history"] = _copy(cur, "alert_history", alerts, ALERT_COLUMNS)
            if quality is not None:
                cur.execute("DELETE FROM data_quality_metrics WHERE date = %s", (day,))
                deleted["data_quality_metrics"] = cur.rowcount
                written["data_quality_metrics"] = _insert_quality(cur, quality)
    except psycopg.Error as exc:
        raise ExportError(f"serving tables in {redact(url)}: expected to export {day}, got {exc}") from exc
    return DayExport(day=day, deleted=deleted, written=written)


def _valid_aggregates(frame: pl.DataFrame, day: date) -> pl.DataFrame:
    agg = _columns(frame, AGG_COLUMNS, "sensor_readings_agg")
    _check_not_null(agg, list(AGG_COLUMNS), "sensor_readings_agg")
    _check_window(agg, "hour_start", day, "sensor_readings_agg")
    # duplicate keys are left to the primary-key build, which names the first one (checking here costs ~15%)
    return agg


def _valid_alerts(frame: pl.DataFrame, day: date) -> pl.DataFrame:
    alerts = _columns(frame, ALERT_COLUMNS, "alert_history")
    _check_not_null(alerts, list(ALERT_COLUMNS), "alert_history")
    _check_window(alerts, "hour_start", day, "alert_history")
    bad = alerts.filter(~pl.col("severity").is_in(SEVERITIES)).get_column("severity").unique().to_list()
    if bad:
        raise ExportError(f"alert_history frame: expected severity in {SEVERITIES}, got {bad}")
    _check_unique(alerts, ["compressor_id", "sensor", "hour_start", "severity"], "alert_history")
    return alerts


def _valid_quality(frame: pl.DataFrame, day: date) -> pl.DataFrame:
    quality = _columns(frame, QUALITY_COLUMNS, "data_quality_metrics")
    _check_not_null(quality, ["date", "layer", "metric"], "data_quality_metrics")
    as_date = pl.col("date")
    if quality.schema["date"] == pl.String:  # ISO text; Polars 2 no longer casts strings to dates
        as_date = as_date.str.to_date("%Y-%m-%d")
    quality = quality.with_columns(as_date.cast(pl.Date))
    other = quality.filter(pl.col("date") != day).get_column("date").unique().to_list()
    if other:
        raise ExportError(f"data_quality_metrics frame: expected date {day} on every row, got also {other}")
    _check_unique(quality, ["layer", "metric"], "data_quality_metrics")
    return quality


def _insert_quality(cur: psycopg.Cursor, frame: pl.DataFrame) -> int:
    """A handful of rows per date; `details` is JSON text cast to jsonb by the server."""
    if frame.is_empty():
        return 0
    cur.executemany(
        "INSERT INTO data_quality_metrics (date, layer, metric, value, details) VALUES (%s, %s, %s, %s, %s::jsonb)",
        frame.rows(),
    )
    return frame.height


def partition_name(day: date) -> str:
    """Name of the `sensor_readings_agg` partition that holds one UTC date."""
    return f"sensor_readings_agg_p{day:%Y%m%d}"


def _swap_partition(cur: psycopg.Cursor, day: date, frame: pl.DataFrame) -> tuple[int, int]:
    """Build the date's partition as a new table and swap it in; return (rows replaced, rows written). A date
    without rows gets no partition (an old one is dropped).

    The staging table is declared here rather than with `LIKE sensor_readings_agg`, which would lock the
    parent for the whole transaction and let two exports of different dates deadlock when both upgrade to the
    exclusive lock of the swap. Its columns must match the parent's (ATTACH checks that; tests cover it).
    The CHECK constraint on the date's window lets ATTACH skip scanning the new partition.
    """
    ident, literal = sql.Identifier, sql.Literal
    final = partition_name(day)
    if frame.is_empty():  # nothing to serve for the date (e.g. only quarantined rows): no partition at all
        replaced = 0
        if cur.execute("SELECT to_regclass(%s)", (final,)).fetchone() != (None,):
            replaced = _scalar(cur, sql.SQL("SELECT count(*) FROM {}").format(ident(final)))
            cur.execute(sql.SQL("DROP TABLE {}").format(ident(final)))
        return replaced, 0
    staging = f"{final}_new"
    start = datetime.combine(day, time(), tzinfo=UTC)
    lo, hi = literal(start.isoformat()), literal((start + timedelta(days=1)).isoformat())
    columns = sql.SQL(", ").join(
        sql.SQL("{} {} NOT NULL").format(ident(c), sql.SQL(_SQL_TYPES[t])) for c, t in AGG_COLUMNS.items()
    )
    create = "CREATE TABLE {t} ({cols}, CONSTRAINT {w} CHECK (hour_start >= {lo} AND hour_start < {hi}))"
    cur.execute(sql.SQL(create).format(t=ident(staging), cols=columns, w=ident(f"{final}_window"), lo=lo, hi=hi))
    written = _copy(cur, staging, frame, AGG_COLUMNS, freeze=True)
    key = sql.SQL(", ").join(map(ident, AGG_KEY))
    pkey = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})")
    cur.execute(pkey.format(ident(staging), ident(f"{staging}_pkey"), key))
    replaced = 0
    if cur.execute("SELECT to_regclass(%s)", (final,)).fetchone() != (None,):
        replaced = _scalar(cur, sql.SQL("SELECT count(*) FROM {}").format(ident(final)))
        cur.execute(sql.SQL("DROP TABLE {}").format(ident(final)))
    cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(ident(staging), ident(final)))
    rename = sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}")
    cur.execute(rename.format(ident(final), ident(f"{staging}_pkey"), ident(f"{final}_pkey")))
    attach = sql.SQL("ALTER TABLE sensor_readings_agg ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})")
    cur.execute(attach.format(ident(final), lo, hi))
    return replaced, written


def _scalar(cur: psycopg.Cursor, query: sql.Composable) -> int:
    row = cur.execute(query).fetchone()
    return int(row[0]) if row else 0

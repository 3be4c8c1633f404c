"""Thin delta-rs adapters shared by every lake stage: write, read, schema check, history.

`table` is a short name ('bronze', 'silver', 'quarantine', 'gold', 'ledger') or a path relative to the lake
root (see `schema.table_path`). Frames are Polars; data reaches delta-rs through the Arrow C stream interface.

Writer settings (measured on 4.5 M bronze rows, 2 cores, see benchmarks/bench_bronze.py): Snappy with
dictionary encoding off for float columns writes ~35-40% faster than the delta-rs default (the dictionary
attempt and fallback on high-cardinality floats is the cost), at ~40% more bytes on rounded sensor data;
ZSTD is ~15% smaller than Snappy but ~25% slower. Writing from an iterator of frames (one per chunk of
source files, produced on a background thread) overlaps reading with writing and keeps peak memory near a
few chunks instead of the whole batch.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pyarrow as pa
from deltalake import ColumnProperties, CommitProperties, DeltaTable, WriterProperties, write_deltalake

from altaviz.lake.errors import LakeError, SchemaMismatchError
from altaviz.lake.schema import table_path

_ARROW_LEVEL = pl.CompatLevel.newest()  # string views: no copy from Polars; delta-rs accepts them
Compression = Literal["snappy", "zstd", "lz4", "uncompressed"]
_CODECS = {"snappy": "SNAPPY", "zstd": "ZSTD", "lz4": "LZ4_RAW", "uncompressed": "UNCOMPRESSED"}
_STANDARD_COMMIT_KEYS = {
    "timestamp", "operation", "operationParameters", "operationMetrics", "engineInfo", "clientVersion",
    "version", "readVersion", "isBlindAppend", "userMetadata",
}  # fmt: skip


def _uri(lake: Path | str, table: str) -> str:
    return str(table_path(Path(lake), table))


def table_exists(lake: Path | str, table: str) -> bool:
    return DeltaTable.is_deltatable(_uri(lake, table))


def _open(lake: Path | str, table: str, version: int | None = None) -> DeltaTable:
    uri = _uri(lake, table)
    if not DeltaTable.is_deltatable(uri):
        raise LakeError(
            f"table {table} at {uri}: not found (expected a Delta table; has the stage that writes it run?)"
        )
    dt = DeltaTable(uri)
    if version is not None:
        if not 0 <= version <= dt.version():
            raise LakeError(f"table {table} at {uri}: no version {version} (expected 0..{dt.version()})")
        dt.load_as_version(version)
    return dt


def table_version(lake: Path | str, table: str) -> int | None:
    """Latest version of a table, or None when it does not exist."""
    return DeltaTable(_uri(lake, table)).version() if table_exists(lake, table) else None


def table_schema(lake: Path | str, table: str) -> pl.Schema:
    """The table's current schema as Polars types."""
    return _polars_schema(_open(lake, table))


def _polars_schema(dt: DeltaTable) -> pl.Schema:
    return pl.DataFrame(pa.schema(dt.schema().to_arrow()).empty_table()).schema


def schema_differences(
    expected: Mapping[str, pl.DataType], got: Mapping[str, pl.DataType], where: tuple[str, str] = ("", "")
) -> list[str]:
    """Human-readable differences (column order ignored), empty when the schemas agree. `where` names the
    expected and the got side, e.g. ("table", "frame")."""
    e, g = (f" ({w})" if w else "" for w in where)
    problems = [f"missing column {c!r}: expected {expected[c]}{e}, got none{g}" for c in expected if c not in got]
    problems += [f"unexpected column {c!r}: expected none{e}, got {got[c]}{g}" for c in got if c not in expected]
    problems += [
        f"column {c!r}: expected {expected[c]}{e}, got {got[c]}{g}"
        for c in expected
        if c in got and expected[c] != got[c]
    ]
    return problems


def check_schema(
    lake: Path | str, table: str, expected: Mapping[str, pl.DataType], *, what: str = "the contract"
) -> None:
    """Raise SchemaMismatchError when an existing table's schema differs from `expected` (no table: fine)."""
    if not table_exists(lake, table):
        return
    problems = schema_differences(expected, table_schema(lake, table), (what, "table"))
    if problems:
        raise SchemaMismatchError(
            f"table {table} at {_uri(lake, table)}: schema differs from {what}: " + "; ".join(problems)
        )


def writer_properties(schema: Mapping[str, pl.DataType], compression: Compression = "snappy") -> WriterProperties:
    """Parquet writer settings: no dictionary encoding for float columns (high cardinality)."""
    plain = ColumnProperties(dictionary_enabled=False)
    columns = {name: plain for name, dtype in schema.items() if dtype.is_float()}
    return WriterProperties(compression=_CODECS[compression], column_properties=columns or None)  # type: ignore[arg-type]


def dates_predicate(dates: Iterable[date], column: str = "date") -> str:
    """A delta-rs predicate selecting partitions, e.g. "date IN ('2026-01-01', '2026-01-02')"."""
    values = sorted(set(dates))
    if not values:
        raise LakeError("dates_predicate: expected at least one date, got none")
    return f"{column} IN ({', '.join(repr(d.isoformat()) for d in values)})"


def _prefetch(items: Iterable[pl.DataFrame], depth: int = 1) -> Iterator[pl.DataFrame]:
    """Produce `items` on a background thread, `depth` ahead, so reading overlaps the Delta write."""
    box: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, object]) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as exc:  # handed to the consumer
            put(("error", exc))

    worker = threading.Thread(target=produce, name="altaviz-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "done":
                return
            if kind == "error":
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()


class _Stream:
    """Frames -> Arrow record batches of one fixed schema; keeps the first Python error for re-raising."""

    def __init__(self, frames: Iterable[pl.DataFrame], schema: pl.Schema, table: str) -> None:
        self.frames, self.schema, self.table = frames, schema, table
        self.error: BaseException | None = None
        self.arrow = pl.DataFrame(schema=schema).to_arrow(compat_level=_ARROW_LEVEL).schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            for frame in self.frames:
                if frame.schema != self.schema:
                    problems = schema_differences(self.schema, frame.schema, ("declared", "frame"))
                    raise SchemaMismatchError(
                        f"table {self.table}: a frame written differs from the declared schema: "
                        + "; ".join(problems or ["column order differs"])
                    )
                if frame.height:
                    yield from frame.to_arrow(compat_level=_ARROW_LEVEL).to_batches()
        except BaseException as exc:  # delta-rs would only see a string; keep the original
            self.error = exc
            raise

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.arrow, self.batches())


def write_table(
    lake: Path | str,
    table: str,
    frame: pl.DataFrame | Iterable[pl.DataFrame],
    *,
    mode: Literal["append", "overwrite"] = "append",
    partition_by: list[str] | None = None,
    predicate: str | None = None,
    schema: Mapping[str, pl.DataType] | None = None,
    metadata: Mapping[str, str] | None = None,
    compression: Compression = "snappy",
    allow_empty: bool = True,
) -> int | None:
    """Write one commit and return the new table version (None when nothing was written).

    mode='append' adds rows; mode='overwrite' with `predicate` atomically replaces the rows matching it
    (every written row must match); mode='overwrite' without predicate replaces the whole table (the schema
    may change). `frame` may be an iterable of frames, streamed to the writer; then `schema` is required and
    each frame must have exactly that schema. `metadata` lands in the commit info (see `history`). With
    allow_empty=False an empty DataFrame writes nothing unless the table does not exist yet.
    """
    if mode not in ("append", "overwrite"):
        raise LakeError(f"write_table {table}: mode expected 'append' or 'overwrite', got {mode!r}")
    if predicate is not None and mode != "overwrite":
        raise LakeError(f"write_table {table}: a predicate needs mode='overwrite', got mode={mode!r}")
    if isinstance(frame, pl.DataFrame):
        if schema is not None and frame.schema != pl.Schema(schema):
            raise SchemaMismatchError(
                f"table {table}: frame differs from the declared schema: "
                + "; ".join(schema_differences(schema, frame.schema, ("declared", "frame")) or ["column order differs"])
            )
        target = pl.Schema(schema or frame.schema)
        if not allow_empty and frame.height == 0 and table_exists(lake, table):
            return None
        frames: Iterable[pl.DataFrame] = [frame]
    else:
        if schema is None:
            raise LakeError(f"write_table {table}: streaming an iterable of frames needs schema=")
        target, frames = pl.Schema(schema), _prefetch(frame)
    exists = table_exists(lake, table)
    opened = DeltaTable(_uri(lake, table)) if exists else None  # one log replay serves the check and the write
    if opened is not None and not (mode == "overwrite" and predicate is None):
        current = _polars_schema(opened)
        problems = schema_differences(current, target, ("table", "frame"))
        if problems:
            raise SchemaMismatchError(
                f"table {table} at {_uri(lake, table)}: the frame written does not fit the table: "
                + "; ".join(problems)
            )
        if list(current) != list(target):  # delta-rs matches by name, but keep the table's column order
            order = list(current)
            target = pl.Schema({c: target[c] for c in order})
            frames = (f.select(order) for f in frames)
    stream = _Stream(frames, target, table)
    uri = _uri(lake, table)
    Path(uri).parent.mkdir(parents=True, exist_ok=True)
    try:
        write_deltalake(
            uri if opened is None else opened,
            stream.reader(),
            mode=mode,
            partition_by=partition_by,
            predicate=predicate,
            schema_mode="overwrite" if exists and mode == "overwrite" and predicate is None else None,
            writer_properties=writer_properties(target, compression),
            commit_properties=CommitProperties(custom_metadata=dict(metadata)) if metadata else None,
        )
    except Exception as exc:
        if stream.error is not None:
            raise stream.error from None
        raise LakeError(f"table {table} at {uri}: write failed ({mode}): {exc}") from exc
    if opened is None:
        return DeltaTable(uri).version()
    opened.update_incremental()
    return opened.version()


def scan_table(
    lake: Path | str,
    table: str,
    *,
    version: int | None = None,
    dates: Iterable[date] | None = None,
    columns: list[str] | None = None,
) -> pl.LazyFrame:
    """Lazy scan; a `dates` filter prunes `date` partitions (only those files are opened)."""
    uri = _uri(lake, table)
    _open(lake, table, version)  # friendly errors for a missing table or version
    lf = pl.scan_delta(uri, version=version)
    if dates is not None:
        lf = lf.filter(pl.col("date").is_in(sorted(set(dates))))
    return lf.select(columns) if columns is not None else lf


def read_table(
    lake: Path | str,
    table: str,
    *,
    version: int | None = None,
    dates: Iterable[date] | None = None,
    columns: list[str] | None = None,
    filters: pl.Expr | None = None,
) -> pl.DataFrame:
    """Read a table (optionally an older version, some date partitions, some columns, a row filter)."""
    lf = scan_table(lake, table, version=version, dates=dates)
    if filters is not None:
        lf = lf.filter(filters)
    if columns is not None:
        lf = lf.select(columns)
    return lf.collect()


def history(lake: Path | str, table: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Commits newest first: version, timestamp (UTC datetime), operation, parameters, metrics, metadata."""
    rows = []
    for c in _open(lake, table).history(limit):
        rows.append(
            {
                "version": c.get("version"),
                "timestamp": datetime.fromtimestamp(c["timestamp"] / 1000, tz=UTC)
                if c.get("timestamp") is not None
                else None,
                "operation": c.get("operation"),
                "parameters": c.get("operationParameters", {}),
                "metrics": c.get("operationMetrics", {}),
                "metadata": {k: v for k, v in c.items() if k not in _STANDARD_COMMIT_KEYS},
            }
        )
    return rows

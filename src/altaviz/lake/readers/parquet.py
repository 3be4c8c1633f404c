"""Parquet: read only the reading columns present, in their stored types; `coerce` types them."""

from __future__ import annotations

import io
import json

import polars as pl
import pyarrow.parquet as pq


def read_parquet_bytes(data: bytes, wanted: list[str]) -> tuple[pl.DataFrame, list[str]]:
    """The `wanted` columns present in the file (stored types) + `_source_row`; the file's column names."""
    schema = pl.read_parquet_schema(io.BytesIO(data))
    present = [c for c in wanted if c in schema]
    if present:
        frame = pl.read_parquet(io.BytesIO(data), columns=present)
    else:
        frame = pl.DataFrame(height=pq.ParquetFile(io.BytesIO(data)).metadata.num_rows)
    row = pl.int_range(pl.len(), dtype=pl.Int64).alias("_source_row")
    return frame.select(row, *present), list(schema)


def raw_records(data: bytes, rows: list[int]) -> list[str]:
    """Rows `rows` of the file, every column, as JSON text (the bronze `_raw_record` of Parquet rows)."""
    picked = pl.read_parquet(io.BytesIO(data))[rows]
    return [json.dumps(r, default=str, allow_nan=True) for r in picked.to_dicts()]

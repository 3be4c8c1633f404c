"""Explicit Spark schemas of the medallion, translated from the Polars schemas of `altaviz.lake.schema`.

One source of truth: the lake's Polars schemas (rendered from the profile) are mapped type by type, so the Spark
engine never lists a column by hand. Also: Arrow <-> Spark frame conversion and the schema check that guards every
Spark write (Sail does not enforce a Delta table's schema on append/overwrite).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
from pyspark.sql import types as T

from altaviz.errors import AltavizError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class SparkSchemaError(AltavizError):
    """A Spark frame does not have the schema its table requires."""


def spark_type(dtype: pl.DataType) -> T.DataType:
    if dtype == pl.String():
        return T.StringType()
    if dtype == pl.Float64():
        return T.DoubleType()
    if dtype == pl.Float32():
        return T.FloatType()
    if dtype == pl.Int64():
        return T.LongType()
    if dtype == pl.Int32():
        return T.IntegerType()
    if dtype == pl.Int8():
        return T.ByteType()
    if dtype == pl.Boolean():
        return T.BooleanType()
    if dtype == pl.Date():
        return T.DateType()
    if isinstance(dtype, pl.Datetime):
        if dtype.time_unit != "us" or dtype.time_zone not in ("UTC", None):
            raise SparkSchemaError(f"column type {dtype}: expected Datetime('us', 'UTC') (Spark timestamps are UTC µs)")
        return T.TimestampType() if dtype.time_zone else T.TimestampNTZType()
    raise SparkSchemaError(f"column type {dtype}: no Spark equivalent in the Spark engine's mapping")


def spark_schema(schema: pl.Schema | dict[str, pl.DataType]) -> T.StructType:
    return T.StructType([T.StructField(name, spark_type(dtype), True) for name, dtype in dict(schema).items()])


def conform(frame: DataFrame, schema: pl.Schema | dict[str, pl.DataType]) -> DataFrame:
    """One select: the schema's columns, in its order, cast to its types."""
    from pyspark.sql import functions as F

    return frame.select([F.col(n).cast(spark_type(t)).alias(n) for n, t in dict(schema).items()])


def check_schema(frame: DataFrame, schema: pl.Schema | dict[str, pl.DataType], what: str) -> None:
    """Refuse a frame whose columns or types differ from `schema` (names, order and types must match)."""
    expected = [(f.name, f.dataType) for f in spark_schema(schema).fields]
    got = [(f.name, f.dataType) for f in frame.schema.fields]
    if got == expected:
        return
    exp, have = dict(expected), dict(got)
    problems = [f"missing {n}" for n in exp if n not in have]
    problems += [f"unexpected column {n}" for n in have if n not in exp]
    problems += [
        f"{n}: expected {exp[n].simpleString()}, got {have[n].simpleString()}"
        for n in exp
        if n in have and exp[n] != have[n]
    ]
    if not problems:
        problems = [f"column order {[n for n, _ in got]}, expected {[n for n, _ in expected]}"]
    raise SparkSchemaError(f"{what}: schema mismatch, refusing to write ({'; '.join(problems)})")


def to_spark(spark: SparkSession, frame: pl.DataFrame, schema: pl.Schema | None = None) -> DataFrame:
    """A Polars frame as a Spark frame with the explicit schema (NaN and ±inf kept: Arrow, not pandas)."""
    schema = schema or frame.schema
    table = frame.select(list(dict(schema))).cast(dict(schema)).to_arrow()
    table = table.cast(pa.schema([pa.field(f.name, _arrow_type(f.type)) for f in table.schema]))
    return spark.createDataFrame(table, schema=spark_schema(schema))


def _arrow_type(t: pa.DataType) -> pa.DataType:
    # Polars exports large/view strings; Spark Connect maps plain utf8
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    return t


def to_polars(frame: DataFrame, schema: pl.Schema | dict[str, pl.DataType]) -> pl.DataFrame:
    """A Spark frame collected through Arrow, cast to the Polars schema."""
    out = pl.from_arrow(frame.toArrow())
    assert isinstance(out, pl.DataFrame)
    return out.select(list(dict(schema))).cast(dict(schema))

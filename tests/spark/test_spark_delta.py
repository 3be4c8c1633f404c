"""Delta writes through the Spark engine (embedded Sail): schema guard, replaceWhere by date, interop with
delta-rs / the Polars engine, and the `altaviz etl --engine spark` command."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest
from deltalake import DeltaTable
from typer.testing import CliRunner

from altaviz.engines.spark_engine import get_session
from altaviz.engines.spark_engine.schema import SparkSchemaError, to_spark
from altaviz.lake.delta_writer import write_delta
from altaviz.lake.spark_delta import write_dates

SCHEMA = pl.Schema({"asset": pl.String(), "ts": pl.Datetime("us", "UTC"), "x": pl.Float64(), "date": pl.Date()})
D1, D2 = date(2026, 11, 20), date(2026, 11, 21)


def _frame(values: dict[date, list[float]]) -> pl.DataFrame:
    rows = [
        ("A", datetime(d.year, d.month, d.day, i, tzinfo=UTC), v, d)
        for d, vs in values.items()
        for i, v in enumerate(vs)
    ]
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


@pytest.fixture(scope="module")
def spark():
    return get_session()


def test_replace_where_replaces_only_that_date(spark, tmp_path):
    path = tmp_path / "t"
    write_dates(to_spark(spark, _frame({D1: [1.0, 2.0], D2: [3.0]})), path, SCHEMA, [D1, D2])
    write_dates(to_spark(spark, _frame({D1: [9.0]})), path, SCHEMA, [D1])
    got = pl.read_delta(str(path)).sort("date", "ts")
    assert got.get_column("x").to_list() == [9.0, 3.0]  # D1 replaced, D2 untouched
    assert DeltaTable(str(path)).version() == 1


def test_rerun_of_a_date_is_idempotent(spark, tmp_path):
    path = tmp_path / "t"
    frame = _frame({D1: [1.0, 2.0], D2: [3.0]})
    for _ in range(2):
        write_dates(to_spark(spark, frame), path, SCHEMA, [D1, D2])
    assert pl.read_delta(str(path)).sort("date", "ts").equals(frame.sort("date", "ts"))


def test_rows_outside_the_dates_are_not_written(spark, tmp_path):
    path = tmp_path / "t"
    write_dates(to_spark(spark, _frame({D1: [1.0], D2: [2.0]})), path, SCHEMA, [D1, D2])
    write_dates(to_spark(spark, _frame({D1: [5.0], D2: [6.0]})), path, SCHEMA, [D1])
    got = pl.read_delta(str(path)).sort("date")
    assert got.get_column("x").to_list() == [5.0, 2.0]


def test_wrong_type_is_refused(spark, tmp_path):
    path = tmp_path / "t"
    write_dates(to_spark(spark, _frame({D1: [1.0]})), path, SCHEMA, [D1])
    wrong = pl.Schema({**SCHEMA, "x": pl.String()})
    bad = to_spark(spark, _frame({D1: [2.0]}).with_columns(pl.col("x").cast(pl.String)), wrong)
    with pytest.raises(SparkSchemaError, match=r"x: expected double, got string"):
        write_dates(bad, path, SCHEMA, [D1])
    assert pl.read_delta(str(path)).get_column("x").to_list() == [1.0]
    assert DeltaTable(str(path)).version() == 0


def test_extra_column_is_refused(spark, tmp_path):
    path = tmp_path / "t"
    write_dates(to_spark(spark, _frame({D1: [1.0]})), path, SCHEMA, [D1])
    wide = pl.Schema({**SCHEMA, "extra": pl.Int64()})
    bad = to_spark(spark, _frame({D1: [2.0]}).with_columns(extra=pl.lit(1, pl.Int64)), wide)
    with pytest.raises(SparkSchemaError, match="unexpected column extra"):
        write_dates(bad, path, SCHEMA, [D1])
    assert DeltaTable(str(path)).version() == 0


def test_existing_table_with_other_schema_is_refused(spark, tmp_path):
    path = tmp_path / "t"
    other = _frame({D1: [1.0]}).with_columns(pl.col("x").cast(pl.Float32))
    write_delta(path, other, mode="replace", replace_partitions=[D1])
    with pytest.raises(SparkSchemaError, match="existing table schema differs"):
        write_dates(to_spark(spark, _frame({D1: [2.0]})), path, SCHEMA, [D1])


def test_polars_written_table_is_read_and_replaced_by_spark(spark, tmp_path):
    """delta-rs writes, Spark reads and replaces a date, delta-rs reads Spark's commit."""
    path = tmp_path / "t"
    write_delta(path, _frame({D1: [1.0], D2: [2.0]}), mode="replace", replace_partitions=[D1, D2])
    read = spark.read.format("delta").load(str(path)).orderBy("date").collect()
    assert [r["x"] for r in read] == [1.0, 2.0]
    write_dates(to_spark(spark, _frame({D2: [7.0, 8.0]})), path, SCHEMA, [D2])
    got = pl.read_delta(str(path)).sort("date", "ts")
    assert got.get_column("x").to_list() == [1.0, 7.0, 8.0]
    write_delta(path, _frame({D1: [4.0]}), mode="replace", replace_partitions=[D1])  # and back to delta-rs
    assert pl.read_delta(str(path)).sort("date", "ts").get_column("x").to_list() == [4.0, 7.0, 8.0]


def test_cli_rejects_a_bad_spark_remote(tmp_path):
    from altaviz.cli import app

    result = CliRunner().invoke(
        app,
        [
            "etl",
            "--raw",
            str(tmp_path),
            "--lake",
            str(tmp_path / "lake"),
            "--skip-export",
            "--engine",
            "polars",
            "--spark-remote",
            "sc://localhost:1",
        ],
    )
    assert result.exit_code == 2
    assert "only used with --engine spark" in result.output


def test_cli_etl_with_the_spark_engine(tmp_path):
    """`altaviz etl --engine spark` end to end on a tiny simulated fleet: tables written by Spark, readable by
    delta-rs, with as many gold rows as silver rows; a second run of one date changes only that date."""
    from datetime import timedelta

    from altaviz.cli import app
    from altaviz.profiles import load_profile
    from altaviz.simulate.runner import run_simulation

    run_simulation(
        load_profile("compressor"),
        tmp_path / "sim",
        assets=2,
        days=2,
        interval=timedelta(minutes=30),
        seed=3,
        fmt="parquet",
        start=datetime(2026, 11, 1, tzinfo=UTC),
    )
    lake = tmp_path / "lake"
    args = ["etl", "--raw", str(tmp_path / "sim"), "--lake", str(lake), "--skip-export", "--engine", "spark"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    silver = pl.read_delta(str(lake / "silver/sensor_readings"))
    gold = pl.read_delta(str(lake / "gold/sensor_features"))
    assert silver.height > 0 and gold.height == silver.height
    assert sorted(silver.get_column("date").unique()) == [date(2026, 11, 1), date(2026, 11, 2)]
    before = DeltaTable(str(lake / "silver/sensor_readings")).version()
    rerun = CliRunner().invoke(app, [*args, "--skip-bronze", "--date", "2026-11-02"])
    assert rerun.exit_code == 0, rerun.output
    again = pl.read_delta(str(lake / "silver/sensor_readings"))
    assert DeltaTable(str(lake / "silver/sensor_readings")).version() == before + 1
    assert again.sort("compressor_id", "timestamp").equals(silver.sort("compressor_id", "timestamp"))

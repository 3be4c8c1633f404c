"""Delta adapters: write modes, partition-pruned reads, schema checks, history and time travel."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from altaviz.lake.errors import LakeError, SchemaMismatchError
from altaviz.lake.tables import (
    check_schema,
    dates_predicate,
    history,
    read_table,
    scan_table,
    table_exists,
    table_schema,
    table_version,
    write_table,
)

D1, D2, D3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)


def frame(day: date, values: list[float], name: str = "a") -> pl.DataFrame:
    return pl.DataFrame(
        {"name": [name] * len(values), "value": values, "date": [day] * len(values)},
        schema={"name": pl.String, "value": pl.Float64, "date": pl.Date},
    )


def test_append_read_versions_and_time_travel(tmp_path: Path) -> None:
    assert not table_exists(tmp_path, "silver") and table_version(tmp_path, "silver") is None
    assert write_table(tmp_path, "silver", frame(D1, [1.0, 2.0]), partition_by=["date"]) == 0
    assert write_table(tmp_path, "silver", frame(D2, [3.0]), partition_by=["date"]) == 1
    assert table_exists(tmp_path, "silver") and table_version(tmp_path, "silver") == 1
    assert (tmp_path / "silver" / "sensor_readings" / "date=2026-01-02").is_dir()
    assert read_table(tmp_path, "silver").height == 3
    assert read_table(tmp_path, "silver", version=0)["value"].sort().to_list() == [1.0, 2.0]
    assert read_table(tmp_path, "silver", dates=[D2])["value"].to_list() == [3.0]
    assert read_table(tmp_path, "silver", columns=["value"], filters=pl.col("value") > 1.5).shape == (2, 1)
    assert scan_table(tmp_path, "silver", dates=[D1, D3]).collect().height == 2
    assert table_schema(tmp_path, "silver") == frame(D1, [1.0]).schema


def test_partition_pruning_opens_only_wanted_dates(tmp_path: Path) -> None:
    for d in (D1, D2, D3):
        write_table(tmp_path, "gold", frame(d, [float(d.day)]), partition_by=["date"])
    plan = scan_table(tmp_path, "gold", dates=[D2]).explain()
    assert "date=2026-01-02" in plan and "date=2026-01-01" not in plan and "date=2026-01-03" not in plan


def test_predicate_overwrite_replaces_only_matching_partitions(tmp_path: Path) -> None:
    write_table(
        tmp_path,
        "silver",
        pl.concat([frame(D1, [1.0]), frame(D2, [2.0]), frame(D3, [3.0])]),
        partition_by=["date"],
    )
    new = pl.concat([frame(D1, [10.0, 11.0]), frame(D3, [30.0])])
    write_table(tmp_path, "silver", new, mode="overwrite", predicate=dates_predicate([D3, D1]), partition_by=["date"])
    got = read_table(tmp_path, "silver").sort("value")
    assert got["value"].to_list() == [2.0, 10.0, 11.0, 30.0]
    with pytest.raises(LakeError, match="write failed"):  # a written row outside the predicate
        write_table(tmp_path, "silver", frame(D2, [5.0]), mode="overwrite", predicate=dates_predicate([D1]))
    assert read_table(tmp_path, "silver").height == 4  # nothing committed
    assert dates_predicate([D2, D1]) == "date IN ('2026-01-01', '2026-01-02')"


def test_full_overwrite_may_change_the_schema(tmp_path: Path) -> None:
    write_table(tmp_path, "gold", frame(D1, [1.0]), partition_by=["date"])
    wider = frame(D1, [2.0]).with_columns(pl.lit(1, pl.Int64).alias("extra"))
    write_table(tmp_path, "gold", wider, mode="overwrite", partition_by=["date"])
    assert read_table(tmp_path, "gold").to_dicts() == wider.to_dicts()


def test_schema_mismatch_is_refused_before_writing(tmp_path: Path) -> None:
    write_table(tmp_path, "silver", frame(D1, [1.0]), partition_by=["date"])
    wrong = frame(D1, [2.0]).with_columns(pl.col("value").cast(pl.Float32))
    with pytest.raises(SchemaMismatchError, match=r"column 'value': expected Float64 \(table\), got Float32 \(frame\)"):
        write_table(tmp_path, "silver", wrong, partition_by=["date"])
    with pytest.raises(SchemaMismatchError, match=r"missing column 'value': expected Float64 \(table\), got none"):
        write_table(tmp_path, "silver", frame(D1, [2.0]).drop("value"), partition_by=["date"])
    with pytest.raises(SchemaMismatchError, match=r"table silver at .*: schema differs from spec: unexpected column"):
        check_schema(tmp_path, "silver", {"name": pl.String, "date": pl.Date}, what="spec")
    assert table_version(tmp_path, "silver") == 0
    reordered = frame(D1, [4.0]).select("date", "value", "name")  # column order alone is fine
    write_table(tmp_path, "silver", reordered, partition_by=["date"])
    assert read_table(tmp_path, "silver").columns == ["name", "value", "date"]


def test_streamed_frames_must_match_the_declared_schema(tmp_path: Path) -> None:
    schema = frame(D1, [1.0]).schema
    write_table(
        tmp_path,
        "bronze",
        iter([frame(D1, [1.0]), frame(D2, [2.0, 3.0])]),
        schema=schema,
        partition_by=["date"],
    )
    assert read_table(tmp_path, "bronze").height == 3

    def bad():
        yield frame(D1, [4.0])
        yield frame(D1, [5.0]).with_columns(pl.col("value").cast(pl.Int64))

    with pytest.raises(SchemaMismatchError, match="column 'value'"):
        write_table(tmp_path, "bronze", bad(), schema=schema, partition_by=["date"])

    def failing():
        yield frame(D1, [4.0])
        raise ValueError("reader broke")

    with pytest.raises(ValueError, match="reader broke"):  # the original error, not a delta-rs wrapper
        write_table(tmp_path, "bronze", failing(), schema=schema, partition_by=["date"])
    assert read_table(tmp_path, "bronze").height == 3 and table_version(tmp_path, "bronze") == 0
    with pytest.raises(LakeError, match="needs schema"):
        write_table(tmp_path, "bronze", iter([frame(D1, [1.0])]))


def test_history_lists_commits_with_metadata(tmp_path: Path) -> None:
    write_table(tmp_path, "silver", frame(D1, [1.0]), partition_by=["date"], metadata={"altaviz.stage": "t"})
    write_table(tmp_path, "silver", frame(D1, [2.0]), mode="overwrite", predicate=dates_predicate([D1]))
    rows = history(tmp_path, "silver")
    assert [r["version"] for r in rows] == [1, 0]
    assert rows[1]["operation"] == "WRITE" and rows[1]["metadata"] == {"altaviz.stage": "t"}
    assert rows[1]["parameters"]["mode"] == "Append"
    assert "predicate" in rows[0]["parameters"] and rows[0]["timestamp"].tzinfo is not None
    assert rows[1]["metrics"]["num_added_rows"] == 1
    assert len(history(tmp_path, "silver", limit=1)) == 1


def test_missing_table_and_version_errors_name_the_table(tmp_path: Path) -> None:
    with pytest.raises(LakeError, match=r"table quarantine at .*quarantine/sensor_readings: not found"):
        read_table(tmp_path, "quarantine")
    write_table(tmp_path, "silver", frame(D1, [1.0]))
    with pytest.raises(LakeError, match=r"no version 5 \(expected 0..0\)"):
        read_table(tmp_path, "silver", version=5)
    with pytest.raises(LakeError, match="predicate needs mode='overwrite'"):
        write_table(tmp_path, "silver", frame(D1, [1.0]), predicate="date = '2026-01-01'")
    write_table(tmp_path, "custom/table", frame(D1, [1.0]))  # a relative path works as a table name
    assert (tmp_path / "custom" / "table" / "_delta_log").is_dir()

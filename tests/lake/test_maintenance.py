"""Compaction and vacuum of lake tables: fewer files, the same rows, old versions readable until vacuumed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable
from typer.testing import CliRunner

from altaviz.cli import app
from altaviz.lake.errors import LakeError
from altaviz.lake.maintenance import compact, vacuum
from altaviz.lake.schema import bronze_schema
from altaviz.lake.tables import _uri, history, read_table, write_table
from altaviz.profiles import load_profile

P = load_profile("compressor")
DAYS = (date(2026, 3, 1), date(2026, 3, 2))


def _append(lake, k: int) -> None:
    """One small stream-like append: 5 readings on each of the two dates."""
    rows = []
    for d in DAYS:
        for i in range(5):
            ts = datetime.combine(d, datetime.min.time(), tzinfo=UTC) + timedelta(minutes=k * 5 + i)
            rows.append({"compressor_id": f"COMP-{i + 1:04d}", "timestamp": ts, "vibration_mms": 2.0 + k + i / 10})
    frame = pl.DataFrame(rows).with_columns(
        pl.lit("kafka:sensor-readings/0").alias("_source_file"),
        pl.lit(k, pl.Int64).alias("_source_row"),
        pl.lit(datetime(2026, 3, 3, tzinfo=UTC)).alias("_ingested_at"),
        pl.lit(f"stream-{k}").alias("_batch_id"),
        pl.col("timestamp").dt.date().alias("date"),
    )
    schema = bronze_schema(P)
    frame = frame.with_columns(pl.lit(None, dtype=t).alias(c) for c, t in schema.items() if c not in frame.columns)
    write_table(lake, "bronze", frame.select(schema.names()).cast(dict(schema)), schema=schema, partition_by=["date"])


def _files(lake, table: str) -> list[str]:
    return DeltaTable(_uri(lake, table)).file_uris()


def _rows(lake, version: int | None = None) -> pl.DataFrame:
    return read_table(lake, "bronze", version=version).sort("timestamp", "compressor_id", "_source_row")


@pytest.fixture
def lake(tmp_path):
    for k in range(12):
        _append(tmp_path, k)
    return tmp_path


def test_compact_merges_files_and_keeps_every_row(lake):
    before, version = _rows(lake), DeltaTable(_uri(lake, "bronze")).version()
    assert len(_files(lake, "bronze")) == 24
    result = compact(lake, "bronze")
    assert (result.files_removed, result.files_added, result.partitions) == (24, 2, 2)
    assert result.version_after == version + 1
    assert len(_files(lake, "bronze")) == 2
    assert _rows(lake).equals(before)
    assert _rows(lake, version).equals(before)  # time travel to the version before still works
    assert history(lake, "bronze", limit=1)[0]["operation"] == "OPTIMIZE"


def test_compact_only_the_given_dates(lake):
    result = compact(lake, "bronze", dates=[DAYS[0]])
    assert (result.files_removed, result.files_added) == (12, 1)
    by_day = [sum(f"date={d.isoformat()}/" in f for f in _files(lake, "bronze")) for d in DAYS]
    assert by_day == [1, 12]
    assert compact(lake, "bronze", dates=[]).files_removed == 0


def test_vacuum_lists_then_deletes_only_unreferenced_files(lake):
    compact(lake, "bronze")
    current = _rows(lake)
    with pytest.raises(LakeError, match="below 168 h"):
        vacuum(lake, "bronze", retain_hours=0)
    listed = vacuum(lake, "bronze", retain_hours=0, allow_short_retention=True)
    assert len(listed) == 24  # the small files the compaction replaced
    assert all(not f.endswith(".json") for f in listed)
    assert len(list((lake / "bronze").rglob("*.parquet"))) == 26  # a dry run deletes nothing
    deleted = vacuum(lake, "bronze", retain_hours=0, dry_run=False, allow_short_retention=True)
    assert deleted == listed
    assert len(list((lake / "bronze").rglob("*.parquet"))) == 2
    assert _rows(lake).equals(current)
    vacuum(lake, "bronze", retain_hours=0, dry_run=False, allow_short_retention=True)  # again: nothing left to do
    assert len(list((lake / "bronze").rglob("*.parquet"))) == 2 and _rows(lake).equals(current)


def test_cli_compact_and_vacuum(lake):
    runner = CliRunner()
    result = runner.invoke(app, ["lake", "compact", "bronze", "--lake", str(lake), "--date", "2026-03-02"])
    assert result.exit_code == 0, result.output
    assert "12 files merged into 1" in result.output
    result = runner.invoke(app, ["lake", "vacuum", "bronze", "--lake", str(lake), "--retain-hours", "0"])
    assert result.exit_code == 2 and "below 168 h" in result.output
    args = ["lake", "vacuum", "bronze", "--lake", str(lake), "--retain-hours", "0", "--allow-short-retention"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "would delete (dry run; --apply deletes) 12 file(s)" in result.output
    result = runner.invoke(app, [*args, "--apply"])
    assert result.exit_code == 0 and "deleted 12 file(s)" in result.output
    result = runner.invoke(app, ["lake", "compact", "gold", "--lake", str(lake)])
    assert result.exit_code == 2 and "not found" in result.output


def test_compaction_beside_concurrent_appends_keeps_every_row_once(lake):
    """The stream keeps appending while a scheduled compaction runs: neither fails, no row is lost or doubled."""
    import threading
    import time

    errors: list[BaseException] = []
    done = threading.Event()
    appended = [12]

    def appends() -> None:
        while not done.is_set():  # appending the whole time the compactions run
            try:
                _append(lake, appended[0])
                appended[0] += 1
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)
                return

    writer = threading.Thread(target=appends)
    writer.start()
    versions: list[tuple[int, int]] = []
    try:
        # at least 4 compactions, and on until an append has landed during one (on a loaded machine the appender
        # may not get the CPU during the first few); bounded, so a product that serialises them still fails
        while len(versions) < 4 or not any(after > before + 1 for before, after in versions):
            if len(versions) >= 60 or errors:
                break
            seen = appended[0]
            while appended[0] == seen and not errors and writer.is_alive():  # the appender is running
                time.sleep(0.005)
            r = compact(lake, "bronze")
            versions.append((r.version_before, r.version_after))
    finally:
        done.set()
        writer.join()
    assert errors == []
    assert appended[0] > 12 and any(after > before + 1 for before, after in versions)  # appends went in between
    rows = _rows(lake)
    assert rows.height == appended[0] * 10
    assert rows.select("_source_row", "timestamp", "compressor_id").n_unique() == rows.height


def test_vacuum_finds_replaced_files_after_a_checkpoint_dropped_their_removal(lake):
    """A checkpoint keeps removals for 7 days only; vacuum must still find files replaced longer ago."""
    import json
    import os
    import time

    result = compact(lake, "bronze")
    uri = Path(_uri(lake, "bronze"))
    eight_days_ago = time.time() - 8 * 86_400
    log = uri / "_delta_log" / f"{result.version_after:020d}.json"
    actions = [json.loads(line) for line in log.read_text().splitlines()]
    for action in actions:  # as if the compaction had run 8 days ago
        if "remove" in action:
            action["remove"]["deletionTimestamp"] = int(eight_days_ago * 1000)
            os.utime(uri / action["remove"]["path"], (eight_days_ago, eight_days_ago))
    log.write_text("".join(json.dumps(a) + "\n" for a in actions))
    DeltaTable(str(uri)).create_checkpoint()
    orphan = uri / "date=2026-03-01" / "part-orphan-of-a-write-that-never-committed.parquet"
    orphan.write_bytes(b"PAR1")
    os.utime(orphan, (eight_days_ago, eight_days_ago))
    listed = vacuum(lake, "bronze")
    assert len(listed) == 25 and any("orphan" in f for f in listed)
    vacuum(lake, "bronze", dry_run=False)
    assert len([f for f in uri.rglob("*.parquet") if "_delta_log" not in f.parts]) == 2  # not the checkpoint
    assert _rows(lake).height == 12 * 10

"""The raw layouts on disk, and that the reported fault counts are what the files hold."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from altaviz.simulate import FaultRates, SimulationError, run_simulation, simulate_fleet

from .conftest import START, STEP, read_partitioned

ID, TS = "compressor_id", "timestamp"


def test_parquet_layout_schema_and_content(written, profile):
    report, fleet, root = written["parquet"]
    files = sorted((root / "raw").rglob("*"))
    data = [f for f in files if f.is_file()]
    assert all(re.fullmatch(r"raw/date=\d{4}-\d{2}-\d{2}/part-\d{3}\.parquet", str(f.relative_to(root))) for f in data)
    assert len(data) == report.files and len({f.parent for f in data}) == 4  # a few parts per day, 4 days
    assert len(data) > 4
    schema = pl.read_parquet_schema(data[0])
    assert schema == {
        ID: pl.String,
        TS: pl.Datetime("us", "UTC"),
        **{s: pl.Float64 for s in profile.sensor_names},
    }
    back = read_partitioned(root, "parquet", profile)
    assert back.height == report.rows == fleet.readings.height
    assert back.drop("_file_date", "_file").equals(fleet.readings)
    assert (back["_file_date"] == fleet.routing["file_date"]).all()


def test_csv_layout_and_content(written, profile):
    report, fleet, root = written["csv"]
    data = sorted(f for f in (root / "raw").rglob("*") if f.is_file())
    assert all(re.fullmatch(r"raw/date=\d{4}-\d{2}-\d{2}/part-\d{3}\.csv", str(f.relative_to(root))) for f in data)
    header, first = data[0].read_text().splitlines()[:2]
    assert header.split(",") == [ID, TS, *profile.sensor_names]
    assert re.fullmatch(r"COMP-\d{4},\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ,.*", first)
    back = read_partitioned(root, "csv", profile)
    assert back.drop("_file_date", "_file").equals(fleet.readings)


def _jsonl_lines(root: Path):
    for path in sorted((root / "raw").rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").split("\n")[:-1]:
            yield path, line


def test_jsonl_layout_and_records(written, profile):
    report, fleet, root = written["jsonl"]
    station = dict(zip(fleet.metadata[ID], fleet.metadata["station_id"], strict=True))
    paths = sorted((root / "raw").rglob("*.jsonl"))
    assert len(paths) == report.files == 40 * 4
    for path in paths:
        rel = path.relative_to(root / "raw").parts
        assert re.fullmatch(r"\d{4}/\d{2}/\d{2}", "/".join(rel[:3]))
        assert station[path.stem] == rel[3]
    keys = [ID, TS, *profile.sensor_names]
    good = 0
    for path, line in _jsonl_lines(root):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        assert list(record) == keys
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record[TS])
        if all(isinstance(record[s], float | int | None) for s in profile.sensor_names):
            good += 1
        if record[ID] == path.stem and record[TS] < "2090":  # late rows sit in a later day's file
            assert record[TS][:10].replace("-", "/") <= "/".join(path.relative_to(root / "raw").parts[:3])
    assert good == report.rows - report.faults["malformed"]


def test_malformed_jsonl_lines_are_counted(written, profile):
    report, _, root = written["jsonl"]
    broken = {"truncated_or_garbage": 0, "wrong_type": 0}
    total = 0
    for _, line in _jsonl_lines(root):
        total += 1
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            broken["truncated_or_garbage"] += 1
            continue
        if any(isinstance(record[s], str) for s in profile.sensor_names):
            broken["wrong_type"] += 1
    assert total == report.rows
    assert sum(broken.values()) == report.faults["malformed"]
    assert min(broken.values()) > 0
    assert written["parquet"][0].faults["malformed"] == 0  # only JSONL has lines to break


def test_fault_counts_match_the_files(written, profile):
    report, fleet, root = written["parquet"]
    f = report.faults
    assert all(f[k] > 0 for k in f if k != "malformed"), f
    df = read_partitioned(root, "parquet", profile)
    sensors = profile.sensor_names

    assert df.height - df.drop("_file").unique().height == f["duplicates"]
    known = pl.col(ID).is_in(fleet.metadata[ID].implode())
    assert df.filter(~known).height == f["unknown_assets"]
    assert set(df.filter(~known)[ID]) <= {"COMP-9999", "COMP-9998", "COMP-9997"}
    future = pl.col(TS) > pl.lit(fleet.end + timedelta(days=1))
    assert df.filter(future).height == f["future"]
    late = pl.col("_file_date") > pl.col(TS).dt.date()
    assert df.filter(late & ~future).height == f["late"]

    assert df.select(pl.sum_horizontal(pl.col(sensors).is_null()).sum()).item() == f["nulls"]
    rated = df.join(fleet.metadata.select(ID, "rated_horsepower"), on=ID, how="left")["rated_horsepower"]
    spikes = 0
    for s in sensors:
        spec = profile.sensors[s]
        lo, hi = spec.physical_range
        top = spec.normal_band[1] * (rated.fill_null(2500.0) if spec.relative_to else 1.0)
        x = df[s]
        spikes += ((x < lo) | (x > hi) | (x > top + 0.35 * (hi - top))).sum()
    assert spikes == f["spikes"]

    # out of order: a row whose time is below the running max of earlier rows of its asset in its file
    # (exact duplicates, late rows, future rows and unknown assets aside)
    ordered = (
        df.unique(maintain_order=True)
        .filter(known & ~future & (pl.col("_file_date") == pl.col(TS).dt.date()))
        .with_columns(pl.col(TS).cum_max().shift(1).over("_file", ID).alias("_prev_max"))
    )
    assert ordered.filter(pl.col(TS) < pl.col("_prev_max")).height == f["out_of_order"]


def test_stuck_sensors_are_flat_for_90_minutes_and_nothing_else_is(written, profile):
    report, fleet, root = written["parquet"]
    df = read_partitioned(root, "parquet", profile)
    df = df.filter(pl.col(ID).is_in(fleet.metadata[ID].implode()) & (pl.col(TS) < fleet.end))
    df = df.unique([ID, TS], keep="first").sort(ID, TS)
    runs = []
    for s in profile.sensor_names:
        r = (
            df.select(ID, TS, s)
            .with_columns(
                ((pl.col(s) != pl.col(s).shift(1)) | (pl.col(ID) != pl.col(ID).shift(1)))
                .fill_null(True)
                .cum_sum()
                .alias("run")
            )
            .group_by("run")
            .agg(pl.col(ID).first(), pl.col(TS).min().alias("t0"), pl.col(TS).max().alias("t1"), pl.len())
            .filter(pl.col("t1") - pl.col("t0") >= timedelta(hours=1))
        )
        runs += [(i, s, n) for i, n in zip(r[ID], r["len"], strict=True)]
    assert sorted(runs) == sorted(zip(fleet.stuck[ID], fleet.stuck["sensor"], fleet.stuck["rows"], strict=True))
    assert sum(n for *_, n in runs) == report.faults["stuck"]
    assert (fleet.stuck["end_time"] - fleet.stuck["start_time"] >= timedelta(minutes=90)).all()


def test_reference_and_ground_truth_files(written, profile):
    _, fleet, root = written["csv"]
    meta = pl.read_csv(root / "reference" / "compressors.csv")
    assert meta.columns == list(profile.asset.metadata)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", meta["install_date"][0])
    failures = pl.read_csv(root / "events" / "failures.csv")
    assert failures.columns == [ID, "failure_mode", "onset_time", "failure_time"]
    assert failures.height == fleet.failures.height > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", failures["failure_time"][0])
    maintenance = pl.read_csv(root / "events" / "maintenance.csv")
    assert maintenance.columns == [ID, "maintenance_time", "kind", "note"]
    assert maintenance.height == fleet.maintenance.height > 0
    manifest = json.loads((root / "simulation.json").read_text())
    assert manifest["faults"] == written["csv"][0].faults and manifest["seed"] == 11


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_rerun_is_byte_identical(profile, tmp_path, fmt):
    args = {"assets": 6, "days": 2, "interval": STEP, "seed": 3, "fmt": fmt, "start": START}
    run_simulation(profile, tmp_path / "a", **args)
    run_simulation(profile, tmp_path / "b", **args)
    run_simulation(profile, tmp_path / "a", **args)  # over a previous run: same files again
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    run_simulation(profile, tmp_path / "c", **(args | {"seed": 4}))
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_clean_run_files_hold_no_faults(profile, tmp_path):
    report = run_simulation(
        profile,
        tmp_path,
        assets=6,
        days=2,
        interval=STEP,
        seed=3,
        fmt="parquet",
        start=START,
        faults=FaultRates.none(),
    )
    assert all(v == 0 for v in report.faults.values())
    df = read_partitioned(tmp_path, "parquet", profile)
    assert df.null_count().sum_horizontal().item() == 0
    assert df.select(ID, TS).is_duplicated().sum() == 0
    assert (df["_file_date"] == df[TS].dt.date()).all()


def test_refuses_to_clear_a_folder_it_did_not_write(profile, tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "precious.txt").write_text("keep me")
    with pytest.raises(SimulationError, match="simulation.json"):
        run_simulation(profile, tmp_path, assets=2, days=1, interval=STEP, seed=1, fmt="csv", start=START)
    assert (tmp_path / "raw" / "precious.txt").exists()
    with pytest.raises(SimulationError, match="format"):
        run_simulation(profile, tmp_path / "x", assets=2, days=1, interval=STEP, seed=1, fmt="xml")


def test_a_4_sigma_check_flags_exactly_the_in_range_spikes(written, profile):
    """What silver does: drop unknown/future/duplicate/null/out-of-range rows, then flag readings more than
    4 sigma from their asset-day mean. That must catch every in-range spike and nothing else."""
    report, fleet, root = written["parquet"]
    sensors = profile.sensor_names
    df = read_partitioned(root, "parquet", profile).unique([ID, TS], keep="first", maintain_order=True)
    ok = pl.all_horizontal(
        [pl.col(s).is_not_null() & pl.col(s).is_between(*profile.sensors[s].physical_range) for s in sensors]
    )
    df = df.filter(pl.col(ID).is_in(fleet.metadata[ID].implode()) & (pl.col(TS) < fleet.end) & ok)
    day = pl.col(TS).dt.date()
    z = df.select(
        ID,
        TS,
        *[((pl.col(s) - pl.col(s).mean().over(ID, day)).abs() / pl.col(s).std().over(ID, day)) for s in sensors],
    )
    flagged = z.filter(pl.max_horizontal(sensors) > 4.0).select(ID, TS)
    clean = simulate_fleet(profile, 40, 4, STEP, 11, start=START, faults=FaultRates.none())
    changed = df.join(clean.readings, on=[ID, TS], suffix="_c").filter(
        pl.any_horizontal([pl.col(s) > 1.3 * pl.col(f"{s}_c") for s in sensors])
    )
    assert flagged.height > 0
    assert flagged.sort(ID, TS).equals(changed.select(ID, TS).sort(ID, TS))

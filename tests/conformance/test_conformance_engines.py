"""Conformance of the stage functions: the Spark engine and the Polars engine over the same bronze frames.

Runs on any Spark session (embedded Sail by default; `ALTAVIZ_TEST_SPARK=jvm` for JVM PySpark local), since it
compares DataFrames, not Delta tables. Asserts identical silver rows, identical quarantine (keys, reasons,
details), identical duplicate counts, and gold features equal (floats within 1e-9 relative).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pytest

from altaviz.engines import get_engine, polars_engine
from altaviz.engines.spark_engine.schema import to_polars, to_spark
from altaviz.lake.schema import bronze_schema, gold_schema, metadata_schema, quarantine_schema, silver_schema
from altaviz.profiles.model import Profile
from altaviz.profiles.spec import feature_spec

from .compare import REL_TOL_F32, assert_frames_conform, float_mismatches
from .conftest import DATASETS, Dataset


@dataclass
class Outputs:
    silver: pl.DataFrame
    quarantine: pl.DataFrame
    duplicates: dict
    gold: pl.DataFrame


def _polars(data: Dataset) -> Outputs:
    r = polars_engine.validate(data.bronze, data.metadata, data.profile)
    gold = polars_engine.build_features(r.silver, data.profile)
    return Outputs(r.silver, r.quarantine, r.duplicates_dropped, gold)


def _spark(spark, data: Dataset) -> Outputs:
    eng, p = get_engine("spark"), data.profile
    bronze = to_spark(spark, data.bronze, bronze_schema(p))
    r = eng.validate(bronze, to_spark(spark, data.metadata, metadata_schema(p)), p)
    silver = to_polars(r.silver, silver_schema(p))
    # gold from the Polars engine's silver, so a silver difference cannot hide or cause a gold one
    reference_silver = polars_engine.validate(data.bronze, data.metadata, p).silver
    gold = eng.build_features(to_spark(spark, reference_silver, silver_schema(p)), p)
    quarantine = to_polars(r.quarantine, quarantine_schema(p))
    return Outputs(silver, quarantine, r.duplicates_dropped, to_polars(gold, gold_schema(p)))


@pytest.fixture(scope="module")
def outputs(spark, conformance_data) -> dict[str, tuple[Outputs, Outputs]]:
    return {name: (_polars(d), _spark(spark, d)) for name, d in conformance_data.items()}


def _keys(p: Profile) -> list[str]:
    return [p.id_column, p.time_column]


def polars_std_tolerance(profile: Profile) -> dict[str, float]:
    """Per-column tolerances looser than 1e-9 relative: none. (Both engines centre the sums of squares on the
    middle of the normal band, times the metadata column for `relative_to` sensors.)"""
    return {}


@pytest.mark.parametrize("dataset", DATASETS)
def test_silver_rows_identical(outputs, conformance_data, dataset):
    ours, theirs = outputs[dataset]
    p = conformance_data[dataset].profile
    assert ours.silver.height > 0
    assert_frames_conform(ours.silver, theirs.silver, _keys(p), f"{dataset} silver")


@pytest.mark.parametrize("dataset", DATASETS)
def test_quarantine_identical(outputs, dataset):
    ours, theirs = outputs[dataset]
    assert ours.quarantine.height > 0
    assert_frames_conform(ours.quarantine, theirs.quarantine, ["_source_file", "_source_row"], f"{dataset} quarantine")


@pytest.mark.parametrize("dataset", DATASETS)
def test_duplicates_identical(outputs, dataset):
    ours, theirs = outputs[dataset]
    assert ours.duplicates == theirs.duplicates


@pytest.mark.parametrize("dataset", DATASETS)
def test_gold_identical(outputs, conformance_data, dataset):
    ours, theirs = outputs[dataset]
    p = conformance_data[dataset].profile
    assert ours.gold.height == ours.silver.height
    assert_frames_conform(ours.gold, theirs.gold, _keys(p), f"{dataset} gold", polars_std_tolerance(p))


def test_simulated_data_exercises_every_rule(outputs):
    """The simulated input is only a good conformance input if it hits the rules (reasons, duplicates, stuck)."""
    ours, _ = outputs["simulated"]
    reasons = set(ours.quarantine.get_column("_reason").unique())
    assert {"malformed_record", "unknown_asset", "future_timestamp", "null_value", "outlier"} <= reasons
    assert sum(ours.duplicates.values()) > 0
    assert ours.silver.get_column("is_stuck").sum() > 0
    assert set(ours.gold.get_column("health_status").unique()) >= {"normal"}


def _exact_std(silver: pl.DataFrame, profile: Profile, sensor: str, seconds: int) -> np.ndarray:
    """Two-pass sample std over (t - w, t] per asset, window by window (independent of both engines)."""
    frame = silver.sort(_keys(profile))
    ids = frame.get_column(profile.id_column).to_numpy()
    t = frame.get_column(profile.time_column).dt.epoch("us").to_numpy()
    x = frame.get_column(sensor).to_numpy()
    out = np.full(len(x), np.nan)
    for asset in np.unique(ids):
        rows = np.flatnonzero(ids == asset)
        start = np.searchsorted(t[rows], t[rows] - seconds * 1_000_000, side="right")
        for k, i in enumerate(rows):
            window = x[rows[start[k]] : i + 1]
            if window.size >= 2:  # one repeated value: exactly 0 (np.std would say ~1e-14)
                out[i] = 0.0 if window.min() == window.max() else np.std(window, ddof=1)
    return out


def test_spark_std_is_accurate(outputs, conformance_data):
    """Every Spark std feature is the exact two-pass reference rounded to its stored Float32 (within one unit in
    the last place: the Float64 result may sit 1e-9 off and round to the neighbour)."""
    data = conformance_data["simulated"]
    ours, theirs = outputs["simulated"]
    gold = theirs.gold.sort(_keys(data.profile))
    for f in feature_spec(data.profile).rolling:
        if f.stat != "std":
            continue
        exact = pl.Series(_exact_std(ours.silver, data.profile, f.sensor, f.seconds)).fill_nan(None)
        bad = float_mismatches(gold.get_column(f.name).cast(pl.Float64), exact, REL_TOL_F32)
        assert bad.height == 0, f"{f.name}: {bad.height} rows off the exact value, e.g. {bad.head(3).rows()}"

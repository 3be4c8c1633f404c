"""Conformance of the lake pipelines: `run_etl` (Polars engine) and `run_etl_spark` (Spark engine, Delta written
by Spark) over copies of the same bronze lake. Needs Delta on Spark, i.e. the embedded Sail engine (the default).

Asserts identical silver / quarantine / gold tables (read back with delta-rs; floats within 1e-9 relative) and
identical quality metrics (`LAKE/metrics/quality_<date>.json`, compared as whole documents).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from altaviz.lake.pipeline import run_etl
from altaviz.lake.schema import GOLD, QUARANTINE, SILVER
from altaviz.lake.spark_pipeline import run_etl_spark

from .compare import assert_frames_conform
from .conftest import DATASETS
from .test_conformance_engines import polars_std_tolerance

# Sail 0.7 reads a Parquet column chunk whose non-NaN values are all equal (min == max in its statistics) as that
# constant, NaN rows included: the bad-input corpus has such a chunk in bronze (discharge_temp_f = [221.0, NaN]),
# so on Sail that row is quarantined with 221.0 in place of NaN and the missing rate misses it. Strict: when Sail
# fixes it these cases pass and must be un-marked.
SAIL_NAN_BUG = pytest.mark.xfail(
    strict=True, reason="Sail 0.7 Parquet reader turns NaN into the chunk's constant min == max value"
)


def _cases(*extra):
    marks = {"bad_inputs": SAIL_NAN_BUG}
    return [pytest.param(d, *extra, marks=marks.get(d, ())) for d in DATASETS]


@pytest.fixture(scope="module")
def lakes(spark, conformance_data, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    out = {}
    for name, data in conformance_data.items():
        root = tmp_path_factory.mktemp(f"lakes-{name}")
        polars_lake, spark_lake = data.copy_lake(root / "polars"), data.copy_lake(root / "spark")
        run_etl(None, polars_lake, data.profile, skip_bronze=True)
        run_etl_spark(None, spark_lake, data.profile, skip_bronze=True)
        out[name] = (polars_lake, spark_lake)
    return out


@pytest.mark.parametrize(
    ("dataset", "table", "keys"),
    [pytest.param(d, SILVER, None) for d in DATASETS]
    + _cases(QUARANTINE, ["_source_file", "_source_row"])
    + [pytest.param(d, GOLD, None) for d in DATASETS],
)
def test_tables_identical(lakes, conformance_data, dataset, table, keys):
    profile = conformance_data[dataset].profile
    keys = keys or [profile.id_column, profile.time_column]
    polars_lake, spark_lake = lakes[dataset]
    ours, theirs = pl.read_delta(str(polars_lake / table)), pl.read_delta(str(spark_lake / table))
    assert ours.height > 0
    assert_frames_conform(ours, theirs, keys, f"{dataset} {table}", polars_std_tolerance(profile))


@pytest.mark.parametrize("dataset", _cases())
def test_quality_metrics_identical(lakes, dataset):
    polars_lake, spark_lake = lakes[dataset]
    ours = sorted(p.name for p in (polars_lake / "metrics").glob("quality_*.json"))
    theirs = sorted(p.name for p in (spark_lake / "metrics").glob("quality_*.json"))
    assert ours and ours == theirs
    for name in ours:
        a = json.loads((polars_lake / "metrics" / name).read_text())
        b = json.loads((spark_lake / "metrics" / name).read_text())
        assert a == b, f"{dataset} {name}: " + str({k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)})

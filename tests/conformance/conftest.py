"""Shared inputs of the conformance suite: the same bronze for both engines, built once per session.

Datasets
  simulated   the simulator's JSONL output, 4 assets x 2 days at 10 min, every fault kind switched on at high
              rates (nulls, spikes, duplicates, out-of-order and late rows, stuck sensors, future timestamps,
              unknown ids, malformed lines)
  bad_inputs  the fixed bad-input corpus `tests/data/bad_inputs/raw` (its reference CSV only names ids, so the
              fleet metadata of COMP-0001..0003 is given here)

Each dataset is ingested into bronze once (delta-rs, the shared bronze stage); a test that runs a pipeline copies
that base lake, so both engines see byte-identical bronze (same `_ingested_at`, same lineage).

Spark session: `ALTAVIZ_TEST_SPARK=sail` (default: embedded Sail, started once per test session) or `jvm` (JVM
PySpark local; no Delta there, so run only `test_conformance_engines.py` with it).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from deltalake import write_deltalake

from altaviz.lake.bronze import ingest
from altaviz.lake.reference import load_metadata, reference_table
from altaviz.lake.schema import BRONZE, metadata_schema
from altaviz.profiles import load_profile
from altaviz.profiles.model import Profile

BAD_INPUTS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs" / "raw"
DATASETS = ("simulated", "bad_inputs")


@dataclass
class Dataset:
    name: str
    lake: Path  # base lake: bronze + ledger + reference table
    bronze: pl.DataFrame
    metadata: pl.DataFrame
    profile: Profile

    def copy_lake(self, dest: Path) -> Path:
        shutil.copytree(self.lake, dest)
        return dest


def _bad_inputs_metadata(profile: Profile) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "compressor_id": ["COMP-0001", "COMP-0002", "COMP-0003"],
            "model": ["JGK/4", "JGT/2", "JGK/4"],
            "rated_horsepower": [1400.0, 1200.0, 1000.0],
            "install_date": [date(2019, 5, 1), date(2020, 3, 15), date(2021, 7, 9)],
            "station_id": ["ST-01", "ST-01", "ST-02"],
            "latitude": [31.95, 31.87, 32.01],
            "longitude": [-102.08, -102.19, -101.93],
        },
        schema=metadata_schema(profile),
    )


def _simulate(profile: Profile, out: Path) -> Path:
    from altaviz.simulate.faults import FaultRates
    from altaviz.simulate.runner import run_simulation

    faults = FaultRates(
        nulls=0.03,
        spikes=0.03,
        duplicates=0.03,
        out_of_order=0.02,
        late=0.02,
        stuck=1.0,
        future=5,
        unknown_assets=0.02,
        malformed=0.02,
    )
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
    run_simulation(
        profile, out, assets=4, days=2, interval=timedelta(minutes=10), seed=11, fmt="jsonl", start=start, faults=faults
    )
    return out / "raw"


def _build(name: str, root: Path) -> Dataset:
    profile = load_profile("compressor")
    lake = root / "base_lake"
    if name == "simulated":
        raw = _simulate(profile, root / "sim")
        ingest(raw, lake, profile)
        metadata = load_metadata(raw, lake, profile)
    else:
        ingest(BAD_INPUTS, lake, profile)
        metadata = _bad_inputs_metadata(profile)
        table = reference_table(lake, profile)
        table.mkdir(parents=True, exist_ok=True)
        write_deltalake(str(table), metadata.to_arrow(), mode="overwrite")
    bronze = pl.read_delta(str(lake / BRONZE))
    return Dataset(name, lake, bronze, metadata, profile)


@pytest.fixture(scope="session")
def conformance_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Dataset]:
    return {name: _build(name, tmp_path_factory.mktemp(f"conf-{name}")) for name in DATASETS}


@pytest.fixture(scope="session")
def spark():
    from altaviz.engines.spark_engine import get_session

    kind = os.environ.get("ALTAVIZ_TEST_SPARK", "sail")
    return get_session(kind=kind)

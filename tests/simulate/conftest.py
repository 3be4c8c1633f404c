from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from altaviz.profiles import load_profile
from altaviz.simulate import FaultRates, SimulatedFleet, run_simulation, simulate_fleet

START = datetime(2026, 3, 2, tzinfo=UTC)
STEP = timedelta(minutes=10)


@pytest.fixture(scope="session")
def profile():
    return load_profile("compressor")


@pytest.fixture(scope="session")
def default_fleet(profile) -> SimulatedFleet:
    """The CLI default: 10 assets x 7 days at 10 min, seed 42, default faults."""
    return simulate_fleet(profile, 10, 7, STEP, 42, start=START)


@pytest.fixture(scope="session")
def big_fleet(profile) -> SimulatedFleet:
    """A clean fleet large enough to hold every failure mode."""
    return simulate_fleet(profile, 120, 7, STEP, 7, start=START, faults=FaultRates.none())


@pytest.fixture(scope="session")
def big_healthy(profile) -> SimulatedFleet:
    """The same fleet without its failures (the counterfactual)."""
    return simulate_fleet(profile, 120, 7, STEP, 7, start=START, faults=FaultRates.none(), failures=False)


def _run(profile, root: Path, fmt: str, assets: int = 40):
    # more assets than the default so every fault kind shows up in numbers
    report = run_simulation(profile, root, assets=assets, days=4, interval=STEP, seed=11, fmt=fmt, start=START)
    fleet = simulate_fleet(
        profile,
        assets,
        4,
        STEP,
        11,
        start=START,
        faults=FaultRates() if fmt == "jsonl" else FaultRates(malformed=0.0),
    )
    return report, fleet


@pytest.fixture(scope="session")
def written(profile, tmp_path_factory):
    """{format: (report, fleet, out dir)} for one run per format."""
    out = {}
    for fmt in ("parquet", "csv", "jsonl"):
        root = tmp_path_factory.mktemp(f"sim_{fmt}")
        report, fleet = _run(profile, root, fmt)
        out[fmt] = (report, fleet, root)
    return out


def read_partitioned(root: Path, fmt: str, profile) -> pl.DataFrame:
    """All raw rows of a parquet/CSV run in file order, with the file's date and path."""
    frames = []
    for path in sorted((root / "raw").glob(f"date=*/part-*.{fmt}")):
        if fmt == "parquet":
            df = pl.read_parquet(path)
        else:
            df = pl.read_csv(path, schema_overrides={profile.time_column: pl.String}).with_columns(
                pl.col(profile.time_column).str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC", time_unit="us")
            )
        frames.append(
            df.with_columns(
                pl.lit(path.parent.name.removeprefix("date=")).str.to_date().alias("_file_date"),
                pl.lit(str(path.relative_to(root))).alias("_file"),
            )
        )
    return pl.concat(frames)

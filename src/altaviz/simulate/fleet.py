"""Fleet metadata: asset ids, models and ratings, install dates, stations in real US gas basins.

Columns are exactly the profile's `asset.metadata`, filled by name where the simulator knows the meaning (the
id, `model`, any column a sensor is `relative_to`, `install_date`, `station_id`/`site_id`, `latitude`,
`longitude`) and by type otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from altaviz.lake.schema import metadata_schema
from altaviz.profiles.model import Profile

# name, (latitude, longitude) of the basin's core, share of stations
BASINS: tuple[tuple[str, tuple[float, float], float], ...] = (
    ("Permian", (31.9, -102.6), 0.30),
    ("Marcellus", (41.2, -76.9), 0.15),
    ("Haynesville", (32.3, -93.7), 0.12),
    ("Eagle Ford", (28.6, -98.4), 0.11),
    ("Bakken", (47.9, -103.2), 0.08),
    ("Utica", (40.1, -81.2), 0.07),
    ("Anadarko", (35.6, -98.1), 0.07),
    ("DJ Basin", (40.4, -104.6), 0.05),
    ("Barnett", (32.9, -97.6), 0.03),
    ("San Juan", (36.7, -107.9), 0.02),
)
GROUP_COLUMNS = ("station_id", "site_id")
FIRST_INSTALL = date(2008, 1, 1)
INSTALL_SPAN_DAYS = 15 * 365


@dataclass
class Fleet:
    ids: list[str]
    groups: list[str]  # station of each asset (JSONL directory; parquet/CSV parts follow station blocks)
    ratings: dict[str, np.ndarray]  # metadata column -> (A,) float64 for sensors' `relative_to`
    latitude: np.ndarray
    longitude: np.ndarray
    metadata: pl.DataFrame
    unknown_ids: list[str]

    @property
    def size(self) -> int:
        return len(self.ids)


def asset_ids(prefix: str, n: int) -> list[str]:
    width = max(4, len(str(n)))
    return [f"{prefix}{i:0{width}d}" for i in range(1, n + 1)]


def unknown_asset_ids(prefix: str, n: int, count: int = 3) -> list[str]:
    """Ids that look real but are not in the fleet (COMP-9999, COMP-9998, ... for fleets under 9,000)."""
    top = 9999 if n < 9000 else n + 9999
    return [f"{prefix}{top - k:04d}" for k in range(count)]


def _station_sizes(n: int, rng: np.random.Generator) -> list[int]:
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(int(rng.integers(3, 6)))
    sizes[-1] -= sum(sizes) - n
    return sizes


def build_fleet(profile: Profile, catalog: list[tuple[str, float]], n: int, rng: np.random.Generator) -> Fleet:
    ids = asset_ids(profile.asset.id_prefix, n)
    sizes = _station_sizes(n, rng)
    n_st = len(sizes)
    width = max(2, len(str(n_st)))
    station_names = [f"STN-{k:0{width}d}" for k in range(1, n_st + 1)]
    station_of = np.repeat(np.arange(n_st), sizes)

    shares = np.array([b[2] for b in BASINS])
    basin = rng.choice(len(BASINS), size=n_st, p=shares / shares.sum())
    centers = np.array([b[1] for b in BASINS])[basin]
    st_lat = centers[:, 0] + rng.uniform(-0.45, 0.45, n_st)
    st_lon = centers[:, 1] + rng.uniform(-0.6, 0.6, n_st)
    lat = np.round(st_lat[station_of] + rng.normal(0.0, 0.002, n), 5)
    lon = np.round(st_lon[station_of] + rng.normal(0.0, 0.002, n), 5)

    pick = rng.integers(0, len(catalog), n)
    models = [catalog[i][0] for i in pick]
    rating = np.array([catalog[i][1] for i in pick], dtype=np.float64)
    install = [FIRST_INSTALL + timedelta(days=int(d)) for d in rng.integers(0, INSTALL_SPAN_DAYS, n)]
    groups = [station_names[i] for i in station_of]

    rated_columns = {s.relative_to for s in profile.sensors.values() if s.relative_to}
    schema = metadata_schema(profile)
    columns: dict[str, object] = {}
    for name, dtype in schema.items():
        if name == profile.id_column:
            columns[name] = ids
        elif name == "model":
            columns[name] = models
        elif name in rated_columns:
            columns[name] = rating
        elif name == "install_date":
            columns[name] = install
        elif name in GROUP_COLUMNS:
            columns[name] = groups
        elif name == "latitude":
            columns[name] = lat
        elif name == "longitude":
            columns[name] = lon
        else:
            columns[name] = _filler(name, dtype, n, rng)
    metadata = pl.DataFrame(columns, schema=schema)
    ratings = {c: metadata[c].cast(pl.Float64).to_numpy() for c in rated_columns}
    return Fleet(ids, groups, ratings, lat, lon, metadata, unknown_asset_ids(profile.asset.id_prefix, n))


def _filler(name: str, dtype: pl.DataType, n: int, rng: np.random.Generator) -> object:
    if dtype == pl.String:
        return [f"{name}-{int(k)}" for k in rng.integers(1, 10, n)]
    if dtype == pl.Float64:
        return np.round(rng.uniform(0.0, 100.0, n), 3)
    if dtype == pl.Int64:
        return rng.integers(0, 1000, n)
    if dtype == pl.Date:
        return [FIRST_INSTALL + timedelta(days=int(d)) for d in rng.integers(0, INSTALL_SPAN_DAYS, n)]
    return [False] * n


def station_parts(groups: list[str], target: int = 1000, max_parts: int = 16) -> np.ndarray:
    """Part number per asset: a few parts per day, each a block of whole stations (about `target` assets)."""
    n = len(groups)
    station = np.zeros(n, dtype=np.int64)
    if n > 1:
        station[1:] = np.cumsum([groups[i] != groups[i - 1] for i in range(1, n)])
    n_st = int(station[-1]) + 1
    parts = min(n_st, max_parts, max(2, math.ceil(n / target)))
    return (station * parts // n_st).astype(np.int32)

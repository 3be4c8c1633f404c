"""NASA C-MAPSS loader: `train_FDxxx`, `test_FDxxx`, `RUL_FDxxx` (plain or .gz), 26 whitespace-separated columns
(unit, cycle, 3 operational settings, 21 sensors), plus per-operating-condition normalisation so multi-condition
subsets (FD002, FD004) share one scale.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from altaviz.errors import AltavizError

SETTINGS = ["setting_1", "setting_2", "setting_3"]
SENSORS = [f"s{i}" for i in range(1, 22)]
COLUMNS = ["unit", "cycle", *SETTINGS, *SENSORS]


class CmapssDataError(AltavizError):
    """A C-MAPSS file is missing or does not follow the format."""


@dataclass(frozen=True)
class CmapssSubset:
    name: str
    train: pl.DataFrame  # unit, cycle, settings, sensors, rul (cycles to failure, uncapped)
    test: pl.DataFrame  # unit, cycle, settings, sensors, rul (true remaining cycles at each row)
    test_rul: np.ndarray  # true RUL at the last test cycle, one per unit in ascending unit order


def _find(data_dir: Path, stem: str) -> Path:
    for candidate in (data_dir / f"{stem}.txt", data_dir / f"{stem}.txt.gz"):
        if candidate.is_file():
            return candidate
    raise CmapssDataError(f"C-MAPSS file {stem}: expected {stem}.txt or {stem}.txt.gz in {data_dir}, got neither")


def _read_rows(path: Path, n_columns: int) -> np.ndarray:
    opener = gzip.open if path.name.endswith(".gz") else open
    rows: list[list[float]] = []
    with opener(path, "rt") as fh:
        for lineno, line in enumerate(fh, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != n_columns:
                raise CmapssDataError(
                    f"C-MAPSS file {path.name} line {lineno}: expected {n_columns} columns, got {len(parts)}"
                )
            try:
                rows.append([float(x) for x in parts])
            except ValueError as exc:
                raise CmapssDataError(f"C-MAPSS file {path.name} line {lineno}: expected numbers, got {exc}") from None
    if not rows:
        raise CmapssDataError(f"C-MAPSS file {path.name}: expected rows, got an empty file")
    return np.asarray(rows, dtype=np.float64)


def read_trajectories(path: Path) -> pl.DataFrame:
    """One train/test file as a frame of unit, cycle, settings and sensors, sorted by unit and cycle."""
    data = _read_rows(path, len(COLUMNS))
    frame = pl.DataFrame({name: data[:, i] for i, name in enumerate(COLUMNS)})
    return frame.with_columns(pl.col("unit").cast(pl.Int64), pl.col("cycle").cast(pl.Int64)).sort("unit", "cycle")


def load_subset(data_dir: Path, subset: str = "FD001") -> CmapssSubset:
    """Read a subset; adds the true remaining cycles `rul` to each train and test row."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise CmapssDataError(f"C-MAPSS directory {data_dir}: expected a directory, got nothing there")
    train = read_trajectories(_find(data_dir, f"train_{subset}"))
    test = read_trajectories(_find(data_dir, f"test_{subset}"))
    rul_file = _find(data_dir, f"RUL_{subset}")
    test_rul = _read_rows(rul_file, 1)[:, 0]
    n_units = test["unit"].n_unique()
    if test_rul.size != n_units:
        raise CmapssDataError(
            f"C-MAPSS file {rul_file.name}: expected one RUL per test unit ({n_units}), got {test_rul.size}"
        )
    train = train.with_columns((pl.col("cycle").max().over("unit") - pl.col("cycle")).alias("rul"))
    units = test["unit"].unique().sort()
    final = pl.DataFrame({"unit": units, "_final": test_rul})
    test = (
        test.join(final, on="unit", how="left")
        .with_columns((pl.col("cycle").max().over("unit") - pl.col("cycle") + pl.col("_final")).alias("rul"))
        .drop("_final")
    )
    return CmapssSubset(name=subset, train=train, test=test, test_rul=test_rul)


def operating_condition(frame: pl.DataFrame) -> pl.Series:
    """Operating-condition key from the three settings rounded to the grid C-MAPSS uses (altitude in kft,
    Mach number to 0.01, throttle angle to units). Single-condition subsets collapse to one key."""
    key = pl.concat_str(
        [
            pl.col("setting_1").round(0).cast(pl.Int64).cast(pl.String),
            (pl.col("setting_2") * 100).round(0).cast(pl.Int64).cast(pl.String),
            pl.col("setting_3").round(0).cast(pl.Int64).cast(pl.String),
        ],
        separator="/",
    )
    return frame.select(key.alias("condition")).to_series()


@dataclass
class ConditionNormaliser:
    """Z-score per operating condition, fitted on training rows; drops sensors that carry no signal
    (at most two distinct values within every condition, e.g. FD001's s1, s5, s6, s10, s16, s18, s19)."""

    features: list[str]
    stats: dict[str, tuple[np.ndarray, np.ndarray]]

    @classmethod
    def fit(cls, frame: pl.DataFrame, candidates: list[str] | None = None) -> ConditionNormaliser:
        candidates = candidates or SENSORS
        cond = operating_condition(frame)
        framed = frame.with_columns(cond)
        informative = []
        for name in candidates:
            n_unique = framed.group_by("condition").agg(pl.col(name).n_unique())[name].max()
            if n_unique is not None and n_unique > 2:
                informative.append(name)
        if not informative:
            raise CmapssDataError("C-MAPSS training data: expected at least one varying sensor, got none")
        stats = {}
        for (key,), part in framed.group_by(["condition"]):
            values = part.select(informative).to_numpy()
            std = values.std(axis=0)
            stats[str(key)] = (values.mean(axis=0), np.where(std > 1e-9, std, 1.0))
        return cls(features=informative, stats=stats)

    def transform(self, frame: pl.DataFrame) -> np.ndarray:
        cond = operating_condition(frame).to_list()
        values = frame.select(self.features).to_numpy().astype(np.float64)
        out = np.empty_like(values)
        unknown = sorted(set(cond) - set(self.stats))
        if unknown:
            raise CmapssDataError(
                f"C-MAPSS operating conditions: expected ones seen in training {sorted(self.stats)}, got {unknown}"
            )
        cond_arr = np.asarray(cond)
        for key, (mean, std) in self.stats.items():
            mask = cond_arr == key
            out[mask] = (values[mask] - mean) / std
        return out.astype(np.float32)

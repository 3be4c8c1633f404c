"""Data-quality faults: which rows get which fault, and the faults that change values (stuck, null, spike).

Every alive reading draws one uniform number; consecutive slices of [0, 1) of the sizes given by `FaultRates`
select the row-level faults, so the kinds never overlap and each count is exact. Stuck episodes (whole
stretches of one sensor) are placed first and excluded from the rest. The faults that add or move rows
(duplicates, late, out-of-order, unknown assets, future timestamps, malformed lines) are applied by
`assemble.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import polars as pl

from altaviz.errors import AltavizError
from altaviz.profiles.model import Profile
from altaviz.simulate.grid import Grid

CLEAN, NULL, SPIKE, DUP, OOO, LATE, UNKNOWN, MALFORMED, FUTURE, STUCK = range(10)
ROW_KINDS = ("nulls", "spikes", "duplicates", "out_of_order", "late", "unknown_assets", "malformed")
KINDS = (*ROW_KINDS, "stuck", "future")
SENTINEL = -9999.0  # a classic "sensor error" code, below every physical range here
STUCK_HOURS = (1.5, 4.0)


class SimulationError(AltavizError):
    """Bad simulator arguments."""


@dataclass
class FaultRates:
    """How much dirt to inject. Fractions are of readings unless noted; `stuck` is the fraction of assets
    that get one flatlined stretch (>= 1.5 h) on some sensor (at least one asset when > 0); `future` is a row
    count; `malformed` applies to JSONL only (broken lines)."""

    nulls: float = 0.005
    spikes: float = 0.003
    duplicates: float = 0.004
    out_of_order: float = 0.004
    late: float = 0.003
    stuck: float = 0.05
    future: int = 5
    unknown_assets: float = 0.002
    malformed: float = 0.003

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "future":
                if int(value) != value or value < 0:
                    raise SimulationError(f"faults.future: expected a row count >= 0, got {value!r}")
            elif not (0.0 <= float(value) <= 1.0) or math.isnan(float(value)):
                raise SimulationError(f"faults.{f.name}: expected a fraction in [0, 1], got {value!r}")
        if self.row_total() > 0.5:
            raise SimulationError(f"faults: row fractions add up to {self.row_total():.3f}, expected <= 0.5")

    @classmethod
    def none(cls) -> FaultRates:
        """A clean fleet: no faults of any kind."""
        return cls(**{f.name: 0 for f in fields(cls)})

    def row_total(self) -> float:
        return float(sum(getattr(self, k) for k in ROW_KINDS))

    def is_clean(self) -> bool:
        return self.row_total() == 0 and self.stuck == 0 and self.future == 0


@dataclass
class ValueFaults:
    kind: np.ndarray  # grid-shaped uint8 fault code per cell
    stuck: pl.DataFrame  # one row per flatlined episode
    counts: dict[str, int]


def _stuck_episodes(
    signals: dict[str, np.ndarray],
    sensors: list[str],
    alive: np.ndarray,
    protect: np.ndarray,
    grid: Grid,
    rate: float,
    rng: np.random.Generator,
    kind: np.ndarray,
) -> list[tuple[int, str, int, int, int]]:
    """(asset, sensor, day, first slot, end slot) of each flatlined stretch, applied in place."""
    if rate <= 0:
        return []
    n_assets = grid.assets
    lengths = grid.day_length()
    min_rows = math.ceil(STUCK_HOURS[0] * 3600.0 / grid.interval_s) + 1
    episodes = []
    for a in rng.choice(n_assets, size=min(n_assets, max(1, round(rate * n_assets))), replace=False):
        sensor = sensors[int(rng.integers(len(sensors)))]
        rows = max(min_rows, math.ceil(rng.uniform(*STUCK_HOURS) * 3600.0 / grid.interval_s) + 1)
        days = np.flatnonzero(lengths >= rows)
        if days.size == 0:
            continue
        for d, u in zip(rng.choice(days, size=30), rng.random(30), strict=True):
            s0 = int(u * (lengths[d] - rows + 1))
            s1 = s0 + rows
            if alive[d, a, s0:s1].all() and not protect[d, a, s0:s1].any():
                x = signals[sensor][d, a]
                x[s0:s1] = x[s0]
                kind[d, a, s0:s1] = STUCK
                episodes.append((int(a), sensor, int(d), s0, s1))
                break
    return sorted(episodes)


def spike_values(
    profile: Profile,
    sensor: str,
    ratings: dict[str, np.ndarray],
    assets: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Half inside the physical range (far above the normal band), half outside it (above the range or the
    -9999 error code). All are far beyond 4 sigma of a day's readings."""
    spec = profile.sensors[sensor]
    lo, hi = spec.physical_range
    top = spec.normal_band[1] * (ratings[spec.relative_to][assets] if spec.relative_to else 1.0)
    n = len(assets)
    inside = top + rng.uniform(0.4, 0.9, n) * (hi - top)
    above = hi + rng.uniform(0.1, 1.0, n) * (hi - lo)
    outside = np.where((rng.random(n) < 0.5) & (SENTINEL < lo), SENTINEL, above)
    use_inside = (rng.random(n) < 0.5) & (hi > top)
    return np.round(np.where(use_inside, inside, outside), 1)


def inject_values(
    profile: Profile,
    signals: dict[str, np.ndarray],
    ratings: dict[str, np.ndarray],
    alive: np.ndarray,
    protect: np.ndarray,
    grid: Grid,
    rates: FaultRates,
    rng: np.random.Generator,
    ids: list[str],
) -> ValueFaults:
    """Place every fault kind on the grid; apply stuck, null and spike in place (null = NaN)."""
    sensors = profile.sensor_names
    kind = np.zeros(alive.shape, dtype=np.uint8)
    counts = dict.fromkeys(KINDS, 0)
    episodes = _stuck_episodes(signals, sensors, alive, protect, grid, rates.stuck, rng, kind)
    counts["stuck"] = sum(s1 - s0 for *_, s0, s1 in episodes)

    if rates.row_total() > 0:
        bounds = np.cumsum([getattr(rates, k) for k in ROW_KINDS]).astype(np.float32)
        u = rng.random(alive.shape, dtype=np.float32)
        code = np.searchsorted(bounds, u, side="right").astype(np.uint8) + 1
        code[code > len(ROW_KINDS)] = CLEAN
        np.copyto(kind, code, where=alive & (kind == CLEAN))
        # no spikes in degradation windows: a failing day's wide spread could hide one from a 4-sigma check
        kind[(kind == SPIKE) & protect] = CLEAN
    if rates.future:
        candidates = np.flatnonzero(alive & (kind == CLEAN))
        pick = rng.choice(candidates, size=min(int(rates.future), candidates.size), replace=False)
        kind.ravel()[pick] = FUTURE

    flat_kind = kind.ravel()
    nulls = np.flatnonzero(flat_kind == NULL)
    which = rng.integers(0, len(sensors), nulls.size)
    for j, name in enumerate(sensors):
        signals[name].ravel()[nulls[which == j]] = np.nan
    spikes = np.flatnonzero(flat_kind == SPIKE)
    which = rng.integers(0, len(sensors), spikes.size)
    for j, name in enumerate(sensors):
        rows = spikes[which == j]
        signals[name].ravel()[rows] = spike_values(profile, name, ratings, (rows // grid.slots) % grid.assets, rng)
    counts["nulls"], counts["spikes"] = int(nulls.size), int(spikes.size)

    epoch_us = grid.epoch_us()
    stuck = pl.DataFrame(
        {
            profile.id_column: [ids[a] for a, *_ in episodes],
            "sensor": [e[1] for e in episodes],
            "start_time": [int(epoch_us[d, s0]) for _, _, d, s0, _ in episodes],
            "end_time": [int(epoch_us[d, s1 - 1]) for _, _, d, _, s1 in episodes],
            "rows": [s1 - s0 for *_, s0, s1 in episodes],
        },
        schema={
            profile.id_column: pl.String,
            "sensor": pl.String,
            "start_time": pl.Int64,
            "end_time": pl.Int64,
            "rows": pl.Int64,
        },
    ).with_columns(pl.col("start_time", "end_time").cast(pl.Datetime("us", "UTC")))
    return ValueFaults(kind, stuck, counts)

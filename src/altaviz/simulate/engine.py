"""`simulate_fleet`: the whole fleet as frames, without I/O (for the file writer and the streaming producer).

Vectorised over the (day, asset, slot) grid; Python loops run over stuck episodes and fault kinds only.
Randomness comes from independent streams spawned from the seed (fleet, signals, events, faults), so the same
seed gives the same fleet and signals whatever fault rates are chosen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import polars as pl

from altaviz.profiles.model import Profile
from altaviz.simulate import compressor
from altaviz.simulate.assemble import assemble
from altaviz.simulate.events import apply_degradation, event_frames, schedule
from altaviz.simulate.faults import KINDS, FaultRates, SimulationError, inject_values
from altaviz.simulate.fleet import build_fleet, station_parts
from altaviz.simulate.grid import Grid
from altaviz.simulate.physics import Context, GenericModel, Healthy, SignalModel, limit_daily_outliers

FUTURE_DAYS = (
    30,
    730,
)  # future-timestamp faults land this far after the end of a default (wall-clock) window
FAR_FUTURE = datetime(2099, 1, 1, tzinfo=UTC)  # ... or in 2099 when the start is given (no wall clock involved)
MAX_ROWS = 50_000_000  # about 10 GB of memory at peak


@dataclass
class SimulatedFleet:
    """A simulated fleet. `readings` holds the emitted rows (faults included) in file order; `routing` is
    aligned with it row by row: `file_date` (the day's file or partition the row is written to; later than the
    timestamp's date for late rows), `host` (row index in `metadata` of the asset whose file carries the row),
    `part` (parquet and CSV part number) and `malformed` (0, or 1 truncated / 2 garbage / 3 wrong type: how a
    JSONL writer breaks the line)."""

    profile: Profile
    start: datetime
    end: datetime
    interval: timedelta
    metadata: pl.DataFrame
    groups: list[str]  # station of each asset, aligned with `metadata`
    readings: pl.DataFrame
    routing: pl.DataFrame
    failures: pl.DataFrame
    maintenance: pl.DataFrame
    stuck: pl.DataFrame
    fault_counts: dict[str, int] = field(default_factory=dict)
    failing_assets: list[str] = field(default_factory=list)


def default_start(days: int, today: date | None = None) -> datetime:
    """Midnight UTC `days` days before today, so the data ends around now."""
    today = today or datetime.now(UTC).date()
    return datetime.combine(today - timedelta(days=days), time(0), tzinfo=UTC)


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def signal_model(profile: Profile) -> tuple[SignalModel, GenericModel | None]:
    """The compressor physics when the profile has its sensors (plus the generic model for any extra sensors),
    else the generic model alone."""
    if compressor.applies(profile):
        extra = [s for s in profile.sensor_names if s not in compressor.SENSORS]
        return compressor.CompressorModel(profile), GenericModel(profile, extra) if extra else None
    return GenericModel(profile), None


def _check(assets: int, days: int, interval: timedelta) -> int:
    if assets < 1:
        raise SimulationError(f"assets: expected at least 1, got {assets}")
    if days < 1:
        raise SimulationError(f"days: expected at least 1, got {days}")
    interval_us = interval // timedelta(microseconds=1)
    if interval_us < 1_000_000 or interval_us % 1_000_000 or interval > timedelta(days=1):
        raise SimulationError(f"interval: expected whole seconds between 1 s and 1 day, got {interval}")
    steps = math.ceil(days * 86_400 / (interval_us / 1e6))
    if assets * steps > MAX_ROWS:
        raise SimulationError(f"{assets} assets x {steps} readings is more than {MAX_ROWS:,} rows; use fewer")
    return steps


def simulate_fleet(
    profile: Profile,
    assets: int,
    days: int,
    interval: timedelta,
    seed: int,
    start: datetime | None = None,
    faults: FaultRates | None = None,
    *,
    failures: bool = True,
) -> SimulatedFleet:
    """Simulate `assets` units for `days` days at `interval`; deterministic for a seed (and a given start).

    `failures=False` gives the healthy counterfactual of the same fleet: same seed, same signals, no failure
    events (what the units would have read had nothing failed).
    """
    steps = _check(assets, days, interval)
    faults = faults if faults is not None else FaultRates()
    wall_clock = start is None
    start = default_start(days) if start is None else _as_utc(start).replace(microsecond=0)
    end = start + timedelta(days=days)
    rng_fleet, rng_signal, rng_events, rng_faults, rng_layout = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)
    )
    model, extra_model = signal_model(profile)

    start_s = int(start.timestamp())
    end_s = int(end.timestamp())
    grid = Grid.build(start_s, int(interval.total_seconds()), steps, assets)

    fleet = build_fleet(profile, model.catalog(), assets, rng_fleet)
    ctx = Context(profile, grid, grid.epoch_s(), fleet.ratings, fleet.latitude, fleet.longitude)
    healthy: Healthy = model.healthy(ctx, rng_signal)
    if extra_model is not None:
        more = extra_model.healthy(ctx, rng_signal)
        healthy.signals.update(more.signals)
        healthy.baseline.update(more.baseline)

    min_failing = min(2, assets // 4)
    events = schedule(model.modes, assets, start_s, end_s, rng_events, min_failing)
    if not failures:
        events = events.subset(np.zeros(len(events), dtype=bool))
    alive = np.broadcast_to(grid.valid(), grid.shape).copy()
    protect = np.zeros(grid.shape, dtype=bool)
    apply_degradation(events, model.modes, healthy, grid, alive, protect)

    signals = {}
    weight = alive.astype(np.float32)
    for name in profile.sensor_names:
        x = healthy.signals[name]
        limit_daily_outliers(x, alive, weight)
        signals[name] = np.maximum(x, np.float32(profile.sensors[name].physical_range[0]), out=x)
    value_faults = inject_values(profile, signals, fleet.ratings, alive, protect, grid, faults, rng_faults, fleet.ids)
    if wall_clock:
        lo, hi = (end_s + d * 86_400 for d in FUTURE_DAYS)
    else:
        lo = max(end_s, int(FAR_FUTURE.timestamp()))
        hi = lo + 300 * 86_400
    decimals = {**(extra_model.decimals if extra_model else {}), **model.decimals}
    out = assemble(
        signals,
        decimals,
        value_faults.kind,
        alive,
        grid,
        fleet,
        station_parts(fleet.groups),
        (lo * 1_000_000, hi * 1_000_000),
        profile.id_column,
        profile.time_column,
        rng_layout,
    )
    counts = {k: 0 for k in KINDS}
    counts.update(value_faults.counts)
    counts.update(out.counts)
    failure_frame, maintenance = event_frames(events, model.modes, fleet.ids, profile.id_column, end_s)
    failing = sorted(set(failure_frame.filter(pl.col("failure_time") < end)[profile.id_column].to_list()))
    return SimulatedFleet(
        profile=profile,
        start=start,
        end=end,
        interval=interval,
        metadata=fleet.metadata,
        groups=fleet.groups,
        readings=out.readings,
        routing=out.routing,
        failures=failure_frame,
        maintenance=maintenance,
        stuck=value_faults.stuck,
        fault_counts=counts,
        failing_assets=failing,
    )

"""Failure events: when units degrade and fail, how the degradation shapes the signals, and the repairs.

Each asset runs a renewal process: time to the next failure is exponential (hazard `HAZARD_PER_DAY`, about a
quarter of the fleet fails within 7 days); degradation starts `onset_days` before the failure (the mode's P-F
interval, 10-30 days for the compressor); at the failure the unit stops (no readings) for 2-5 hours; the repair
resets it to healthy. A first failure early in the window has its onset before the window start: the unit is
already degrading when the readings begin (the ramp is evaluated from the true onset, so the first reading shows
the severity it has by then). After a repair the next onset comes after the repair (the exponential gap runs
from the repair to the onset). Failures fall between 07:00 and 13:00 UTC so that neither the failing stretch nor
the healthy stretch after the repair is a small minority of that day's readings (a per-asset-per-day 4-sigma
outlier check must not flag the degradation; the slow ramps move a day's readings far less than that).
Failures up to `CENSOR_DAYS` after the window are kept as right-censored ground truth (units still degrading at
the end); it covers the longest onset lead, so every degradation visible in the window has its failure recorded.
In a default 10-asset week at least two units fail (`min_failing`), so a demo always has failures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from altaviz.simulate.grid import Grid
from altaviz.simulate.physics import DAY_S, FailureMode, Healthy, severity

HAZARD_PER_DAY = 0.041
FAIL_HOURS = (7.0, 13.0)
DOWNTIME_HOURS = (2.0, 5.0)
CENSOR_DAYS = 30.0  # >= the longest onset lead of any mode (see test_engine)
PROTECT_DAYS = 7.0
MAINTENANCE_KIND = "corrective"


@dataclass
class Events:
    asset: np.ndarray  # (E,) int
    mode: np.ndarray  # (E,) int, index into the model's modes
    onset: np.ndarray  # (E,) int64 epoch seconds
    failure: np.ndarray
    repaired: np.ndarray
    draws: np.ndarray  # (E, max effects) uniform draws for the effect amounts

    def __len__(self) -> int:
        return len(self.asset)

    def subset(self, keep: np.ndarray) -> Events:
        return Events(
            self.asset[keep],
            self.mode[keep],
            self.onset[keep],
            self.failure[keep],
            self.repaired[keep],
            self.draws[keep],
        )


def _snap(t: np.ndarray, start: int, rng: np.random.Generator) -> np.ndarray:
    """Move each time to a random hour in FAIL_HOURS of its UTC day (the next day if that is before start)."""
    midnight = np.floor(t / DAY_S) * DAY_S
    out = midnight + rng.uniform(*FAIL_HOURS, t.shape) * 3600.0
    out = np.where(out <= start, out + DAY_S, out)
    return np.round(out).astype(np.int64)


def schedule(
    modes: tuple[FailureMode, ...],
    n_assets: int,
    start: int,
    end: int,
    rng: np.random.Generator,
    min_failing: int,
) -> Events:
    """Failure events for the window [start, end) (epoch seconds), plus right-censored ones after it."""
    weights = np.array([m.weight for m in modes], dtype=np.float64)
    weights /= weights.sum()
    onset_lo = np.array([m.onset_days[0] for m in modes])
    onset_hi = np.array([m.onset_days[1] for m in modes])
    n_eff = max(len(m.effects) for m in modes)
    horizon = end + CENSOR_DAYS * DAY_S
    parts: list[tuple[np.ndarray, ...]] = []

    active = np.arange(n_assets)
    cursor = np.full(n_assets, float(start))
    first = True
    while active.size:
        k = active.size
        mode = rng.choice(len(modes), size=k, p=weights)
        lead = rng.uniform(onset_lo[mode], onset_hi[mode]) * DAY_S
        gap = rng.exponential(1.0 / HAZARD_PER_DAY, k) * DAY_S
        # after a repair the next onset must come later: lead time, plus a day of slack for the hour snapping
        failure = _snap(cursor + gap + (0.0 if first else lead + DAY_S), start, rng)
        if first and min_failing:
            failing = int((failure < end).sum())
            if failing < min_failing:
                spare = np.flatnonzero(failure >= end)
                pick = rng.choice(spare, size=min(min_failing - failing, spare.size), replace=False)
                forced = _snap(rng.uniform(start, end, pick.size), start, rng)
                failure[pick] = np.where(forced >= end, forced - int(DAY_S), forced)
                failure[pick] = np.maximum(failure[pick], start + 3600)
        downtime = np.round(rng.uniform(*DOWNTIME_HOURS, k) * 3600.0).astype(np.int64)
        draws = rng.random((k, n_eff))
        keep = failure < horizon
        onset = failure - np.round(lead).astype(np.int64)
        parts.append((active[keep], mode[keep], onset[keep], failure[keep], (failure + downtime)[keep], draws[keep]))
        go_on = failure < end
        cursor = (failure + downtime)[go_on].astype(np.float64)
        active = active[go_on]
        first = False
    cols = [np.concatenate([p[i] for p in parts]) for i in range(6)]
    order = np.lexsort((cols[3], cols[0]))
    return Events(*(c[order] for c in cols))


def _span_cells(grid: Grid, asset: np.ndarray, k0: np.ndarray, k1: np.ndarray) -> tuple[np.ndarray, ...]:
    """Flat grid cells of steps [k0, k1) of each event's asset: (cells, event per cell, step per cell)."""
    length = np.maximum(k1 - k0, 0)
    event = np.repeat(np.arange(length.size), length)
    first = np.repeat(np.cumsum(length) - length, length)
    step = np.arange(event.size, dtype=np.int64) - first + np.repeat(k0, length)
    return grid.cell(asset[event], step), event, step


def apply_degradation(
    events: Events,
    modes: tuple[FailureMode, ...],
    healthy: Healthy,
    grid: Grid,
    alive: np.ndarray,
    protect: np.ndarray,
) -> None:
    """Shape the signals in place between onset and failure; drop readings while the unit is down.

    `alive` (grid-shaped) gets False during downtime; `protect` gets True over the last `PROTECT_DAYS` before
    the failure (or from onset, if later) to the repair: the simulator puts no stuck sensors or spikes there, so
    the steep end of the degradation stays readable. (Protecting whole P-F intervals of weeks would leave a
    short window almost no room for stuck sensors; a few flat hours early in a slow ramp hide nothing.)
    Vectorised over all events at once.
    """
    if not len(events):
        return
    k0, k1, k2 = (grid.steps_of(t) for t in (events.onset, events.failure, events.repaired))
    alive.ravel()[_span_cells(grid, events.asset, k1, k2)[0]] = False
    kp = np.maximum(k0, grid.steps_of(events.failure - int(PROTECT_DAYS * DAY_S)))
    protect.ravel()[_span_cells(grid, events.asset, kp, np.minimum(k2 + 1, grid.steps))[0]] = True

    cells, event, step = _span_cells(grid, events.asset, k0, k1)
    onset = events.onset[event].astype(np.float64)
    frac = (grid.start_s + step * float(grid.interval_s) - onset) / (events.failure[event] - onset)
    curvature = np.array([m.curvature for m in modes])[events.mode[event]]
    sev_all = severity(frac, curvature).astype(np.float32)
    cell_mode = events.mode[event]
    for m, mode in enumerate(modes):
        hit = cell_mode == m
        if not hit.any():
            continue
        where, ev, sev = cells[hit], event[hit], sev_all[hit]
        for j, eff in enumerate(mode.effects):
            amount = eff.low + events.draws[:, j] * (eff.high - eff.low)
            if eff.kind == "to":
                amount = amount - healthy.baseline[eff.sensor][events.asset]
            delta = sev * amount[ev].astype(np.float32)
            flat = healthy.signals[eff.sensor].ravel()
            if eff.kind == "mul":
                flat[where] *= delta + np.float32(1.0)
            else:
                flat[where] += delta


def _times(seconds: np.ndarray) -> pl.Series:
    return pl.Series(seconds.astype(np.int64) * 1_000_000).cast(pl.Datetime("us", "UTC"))


def event_frames(
    events: Events, modes: tuple[FailureMode, ...], ids: list[str], id_column: str, end: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(failures, maintenance) ground truth. Failures include right-censored ones (failure_time after the
    window); maintenance lists the repairs of the failures inside the window."""
    names = pl.Series([m.name for m in modes])
    notes = pl.Series([m.repair_note for m in modes])
    idx = pl.Series(events.mode.astype(np.int64))
    id_series = pl.Series(ids).gather(pl.Series(events.asset.astype(np.int64)))
    failures = pl.DataFrame(
        {
            id_column: id_series,
            "failure_mode": names.gather(idx),
            "onset_time": _times(events.onset),
            "failure_time": _times(events.failure),
        }
    ).sort("failure_time", id_column)
    done = events.failure < end
    maintenance = pl.DataFrame(
        {
            id_column: id_series.filter(pl.Series(done)),
            "maintenance_time": _times(events.repaired[done]),
            "kind": pl.Series([MAINTENANCE_KIND] * int(done.sum()), dtype=pl.String),
            "note": notes.gather(idx.filter(pl.Series(done))),
        }
    ).sort("maintenance_time", id_column)
    return failures, maintenance

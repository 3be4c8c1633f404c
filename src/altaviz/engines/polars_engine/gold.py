"""Gold stage rendered in Polars: the profile's feature spec over silver readings.

Input: silver rows of the target dates plus `FeatureSpec.lookback` of history before them, any order.
Output: one gold row per silver reading of the target dates, columns in `gold_schema(profile)` order.
"""

from __future__ import annotations

import queue
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import numpy as np
import polars as pl

from altaviz.engines.polars_engine.windows import (
    WindowIndex,
    change_prefix,
    flat_in_window,
    mean_and_std,
    segment_prefixes,
    sort_by_asset_time,
    window_maxima,
)
from altaviz.lake.schema import gold_schema
from altaviz.profiles.model import Profile
from altaviz.profiles.spec import STATUS_LEVELS, FeatureSpec, RollingFeature, StatusRule, feature_spec

_THREADS = 2
_OPS = {
    "sub": lambda a, b: a - b,
    "add": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


def _centre(profile: Profile, sensor: str) -> pl.Expr:
    """A value near the sensor's readings, subtracted before squaring so the sums keep the variance accurate:
    the middle of the normal band, scaled by the metadata column for `relative_to` sensors (constant per asset)."""
    spec = profile.sensors[sensor]
    lo, hi = spec.normal_band
    mid = pl.lit((lo + hi) / 2)
    return mid * pl.col(spec.relative_to) if spec.relative_to else mid


def _sensor_features(
    frame: pl.DataFrame,
    sensor: str,
    feats: list[RollingFeature],
    index: WindowIndex,
    moments,
    centre,
    scratch: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """All rolling features of one sensor, for the wanted rows (NaN where undefined), as Float32: the features'
    stored type (`gold_schema`). Sums are taken in Float64 and rounded once at the end; maxima and minima are
    taken over the Float32 readings directly, which gives the same values (rounding is monotone) at half the
    memory traffic. `scratch`: a Float32 buffer for the maxima table (see `window_maxima`)."""
    out: dict[str, np.ndarray] = {}
    x = frame.get_column(sensor).cast(pl.Float64).to_numpy()  # nulls become NaN
    extreme = sorted({f.seconds for f in feats if f.stat in ("max", "min")})
    if extreme:
        x32 = x.astype(np.float32)
    if any(f.stat == "max" for f in feats):
        maxima = window_maxima(x32, index, extreme, scratch)
    if any(f.stat == "min" for f in feats):
        minima = {w: -m for w, m in window_maxima(-x32, index, extreme, scratch).items()}
    changes = change_prefix(x, index) if any(f.stat == "std" for f in feats) else None
    at_rows = (moments[0][index.rows], moments[1][index.rows]) if moments is not None else None
    for seconds in sorted({f.seconds for f in feats if f.stat in ("mean", "std")}):
        flat = flat_in_window(changes, index, seconds)[0] if changes is not None else None
        mean, std = mean_and_std(moments, centre, index, seconds, flat, at_rows)
        for f in feats:
            if f.seconds == seconds and f.stat in ("mean", "std"):
                out[f.name] = (mean if f.stat == "mean" else std).astype(np.float32)
    for f in feats:
        if f.stat == "max":
            out[f.name] = maxima[f.seconds]
        elif f.stat == "min":
            out[f.name] = minima[f.seconds]
    return out


def _rolling_features(frame: pl.DataFrame, profile: Profile, spec: FeatureSpec, index: WindowIndex) -> pl.DataFrame:
    """Max/min from a sparse table; mean/std from day-anchored prefix sums (see `windows`).

    Windows are computed over all of `frame` (lookback included); values come back for `index.rows` only. The
    sensors are independent and their NumPy work releases the GIL, so two threads share them (prefix sums
    included), each with its own scratch buffer for the maxima tables.
    """
    if not spec.rolling:
        return pl.DataFrame()
    extreme = sorted({f.seconds for f in spec.rolling if f.stat in ("max", "min")})
    for seconds in {f.seconds for f in spec.rolling}:
        index.plan(seconds)  # built once here, read-only in the threads
    index.grid()  # likewise
    levels = max((index.plan(w).span_index()[0] for w in extreme), default=0)
    scratch: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
    for _ in range(_THREADS):
        scratch.put(np.empty(levels * frame.height, dtype=np.float32))
    moment_sensors = sorted({f.sensor for f in spec.rolling if f.stat in ("mean", "std")})
    centres = {s: _centre(profile, s) for s in moment_sensors}
    # the time column makes constant centres broadcast to every row (a select of literals alone gives one row)
    centre_rows = frame.select(pl.col(profile.time_column), **{f"_centre:{s}": c for s, c in centres.items()})[
        index.rows
    ]
    by_sensor: dict[str, list[RollingFeature]] = {}
    for f in spec.rolling:
        by_sensor.setdefault(f.sensor, []).append(f)

    def one(sensor: str) -> dict[str, np.ndarray]:
        centre, moments = None, None
        if sensor in centres:
            centre = centre_rows.get_column(f"_centre:{sensor}").to_numpy()
            moments = segment_prefixes(frame, {sensor: centres[sensor]}, index)[sensor]
        buffer = scratch.get()
        try:
            return _sensor_features(frame, sensor, by_sensor[sensor], index, moments, centre, buffer)
        finally:
            scratch.put(buffer)

    columns: dict[str, np.ndarray] = {}
    with ThreadPoolExecutor(_THREADS) as pool:
        for result in pool.map(one, sorted(by_sensor)):
            columns.update(result)
    return pl.DataFrame([pl.Series(f.name, columns[f.name], nan_to_null=True) for f in spec.rolling])


def _rate_features(frame: pl.DataFrame, spec: FeatureSpec, index: WindowIndex) -> pl.DataFrame:
    """(x_t - x_ref) / hours, x_ref the latest reading at or before t - w, no older than t - 2w, same asset:
    the reading just before the window (t - w, t] starts."""
    columns: dict[str, np.ndarray] = {}
    rows = index.rows
    for r in spec.rates:
        p = index.plan(r.seconds)
        ref = p.before
        lag = index.key[rows] - index.key[ref]  # microseconds, meaningful when the asset is the same
        valid = (p.start > 0) & (index.asset[ref] == index.asset[rows]) & (lag <= 2 * r.seconds * 1_000_000)
        x = frame.get_column(r.sensor).cast(pl.Float64).to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = (x[rows] - x[ref]) / (lag / 3.6e9)
        columns[r.name] = np.where(valid, rate, np.nan).astype(np.float32)  # the stored type
    return pl.DataFrame([pl.Series(r.name, columns[r.name], nan_to_null=True) for r in spec.rates])


def status_expr(rule: StatusRule) -> pl.Expr:
    x = pl.col(rule.sensor)
    scale = pl.col(rule.relative_to) if rule.relative_to else pl.lit(1.0)
    expr: pl.Expr | pl.Then = pl
    for severity, side, value in rule.thresholds:  # critical boundaries come first
        bound = scale * value
        expr = expr.when(x >= bound if side == "high" else x <= bound).then(pl.lit(severity))
    return expr.otherwise(pl.lit("normal")).alias(rule.name)


def _health_expr(spec: FeatureSpec) -> pl.Expr:
    if not spec.statuses:
        return pl.lit("normal").alias("health_status")
    levels = pl.Enum(list(STATUS_LEVELS))
    return (
        pl.max_horizontal([pl.col(s.name).cast(levels).to_physical() for s in spec.statuses])
        .cast(pl.UInt32)
        .replace_strict(list(range(len(STATUS_LEVELS))), list(STATUS_LEVELS), return_dtype=pl.String)
        .alias("health_status")
    )


def build_features(silver: pl.DataFrame, profile: Profile, dates: Iterable[date] | None = None) -> pl.DataFrame:
    """silver (+ lookback) -> gold rows for `dates` (all dates of the input when None)."""
    spec = feature_spec(profile)
    aid, ts = profile.id_column, profile.time_column
    frame = sort_by_asset_time(silver, aid, ts)
    ts_col = pl.col(ts)
    wanted = sorted(set(dates)) if dates is not None else frame.get_column("date").unique().to_list()
    out = frame.get_column("date").is_in(wanted)
    index = WindowIndex(frame, aid, ts, out.to_numpy())
    parts = [frame.filter(out), _rolling_features(frame, profile, spec, index), _rate_features(frame, spec, index)]
    gold = pl.concat([p for p in parts if p.width], how="horizontal")
    gold = gold.with_columns(
        *[_OPS[d.op](pl.col(d.left), pl.col(d.right)).alias(d.name) for d in spec.derived],
        *[status_expr(s) for s in spec.statuses],
        ts_col.dt.hour().cast(pl.Int8).alias("hour_of_day"),
        ts_col.dt.weekday().cast(pl.Int8).alias("day_of_week"),
        (ts_col.dt.weekday() >= 6).alias("is_weekend"),
    ).with_columns(_health_expr(spec))
    schema = gold_schema(profile)
    return gold.select(schema.names()).cast(dict(schema))

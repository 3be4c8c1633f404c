"""Gold stage rendered in Polars: the profile's feature spec over silver readings.

Input: silver rows of the target dates plus `FeatureSpec.lookback` of history before them, any order.
Output: one gold row per silver reading of the target dates, columns in `gold_schema(profile)` order.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import numpy as np
import polars as pl

from altaviz.engines.polars_engine.rolling import rolling_aligned
from altaviz.engines.polars_engine.windows import (
    WindowIndex,
    change_prefix,
    flat_in_window,
    mean_and_std,
    segment_prefixes,
)
from altaviz.lake.schema import gold_schema
from altaviz.profiles.model import Profile
from altaviz.profiles.spec import STATUS_LEVELS, FeatureSpec, StatusRule, feature_spec

_STAT = {
    "mean": lambda c: pl.col(c).mean(),
    "std": lambda c: pl.col(c).std(ddof=1),
    "max": lambda c: pl.col(c).max(),
    "min": lambda c: pl.col(c).min(),
}
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


def _rolling_features(frame: pl.DataFrame, profile: Profile, spec: FeatureSpec, out: pl.Series) -> pl.DataFrame:
    """Max/min through Polars' rolling context (exact by nature); mean/std through day-anchored sums.

    Windows are computed over all of `frame` (lookback included); rows come back only where `out` is true.
    """
    index = WindowIndex(frame, profile.id_column, profile.time_column, out.to_numpy())
    moment_sensors = sorted({f.sensor for f in spec.rolling if f.stat in ("mean", "std")})
    centres = {s: _centre(profile, s) for s in moment_sensors}
    prefixes = segment_prefixes(frame, centres, index)
    # the time column makes constant centres broadcast to every row (a select of literals alone gives one row)
    centre_rows = frame.select(pl.col(profile.time_column), **{f"_centre:{s}": c for s, c in centres.items()})[
        index.rows
    ]
    changes = {
        s: change_prefix(frame.get_column(s).to_numpy(), index)
        for s in {f.sensor for f in spec.rolling if f.stat == "std"}
    }
    columns: dict[str, pl.Series] = {}
    for seconds in sorted({f.seconds for f in spec.rolling}):
        feats = [f for f in spec.rolling if f.seconds == seconds]
        aggs = [_STAT[f.stat](f.sensor).alias(f.name) for f in feats if f.stat in ("max", "min")]
        if aggs:
            rolled = rolling_aligned(
                frame, time=profile.time_column, group_by=[profile.id_column], period_s=seconds, aggs=aggs
            ).filter(out)
            columns.update({c: rolled.get_column(c) for c in rolled.columns})
        for sensor in sorted({f.sensor for f in feats if f.stat in ("mean", "std")}):
            flat = flat_in_window(changes[sensor], index, seconds)[0] if sensor in changes else None
            centre = centre_rows.get_column(f"_centre:{sensor}").to_numpy()
            mean, std = mean_and_std(prefixes[sensor], centre, index, seconds, flat)
            for f in feats:
                if f.sensor == sensor and f.stat == "mean":
                    columns[f.name] = pl.Series(f.name, mean)
                elif f.sensor == sensor and f.stat == "std":
                    columns[f.name] = pl.Series(f.name, std).fill_nan(None)
    return pl.DataFrame([columns[f.name] for f in spec.rolling]) if columns else pl.DataFrame()


def _rate_features(frame: pl.DataFrame, profile: Profile, spec: FeatureSpec, out: pl.Series) -> pl.DataFrame:
    """(x_t - x_ref) / hours, x_ref the latest reading at or before t - w, no older than t - 2w, same asset."""
    if not spec.rates or not out.any():
        return pl.DataFrame([pl.Series(r.name, [], pl.Float64) for r in spec.rates])
    asset = frame.get_column(profile.id_column).rle_id().to_numpy().astype(np.int64)
    t_us = frame.get_column(profile.time_column).dt.epoch("us").to_numpy()
    span = int(t_us.max() - t_us.min()) + 10 * 86_400 * 1_000_000
    key = asset * span + (t_us - t_us.min())
    rows = np.flatnonzero(out.to_numpy())
    key_i, asset_i, t_i = key[rows], asset[rows], t_us[rows]
    columns: dict[str, np.ndarray] = {}
    for r in spec.rates:
        w = r.seconds * 1_000_000
        pos = np.searchsorted(key, key_i - w, side="right") - 1
        valid = pos >= 0
        safe = np.where(valid, pos, 0)
        valid &= (asset[safe] == asset_i) & (key[safe] >= key_i - 2 * w)
        x = frame.get_column(r.sensor).to_numpy()
        hours = (t_i - t_us[safe]) / 3.6e9
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = (x[rows] - x[safe]) / hours
        columns[r.name] = np.where(valid, rate, np.nan)
    return pl.DataFrame(columns).with_columns(pl.all().fill_nan(None))


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
    frame = silver.sort(aid, ts)
    ts_col = pl.col(ts)
    wanted = sorted(set(dates)) if dates is not None else frame.get_column("date").unique().to_list()
    out = frame.get_column("date").is_in(wanted)
    parts = [
        frame.filter(out),
        _rolling_features(frame, profile, spec, out),
        _rate_features(frame, profile, spec, out),
    ]
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

"""Gold stage rendered in Spark: the profile's feature spec over silver readings, in one select.

Input: silver rows of the target dates plus `FeatureSpec.lookback` of history before them.
Output: one gold row per silver reading of the target dates, columns in `gold_schema(profile)` order.

Windows are time ranges on epoch microseconds partitioned by asset: (t - w, t] is
`rangeBetween(-(w - 1 µs), 0)`; the rate-of-change reference (latest reading in [t - 2w, t - w]) is the last row
of `rangeBetween(-2w, -w)`. Sample std is 0 where the window holds >= 2 readings of one value (as in the Polars
engine: exact, whatever the summation order) and null below 2 readings; otherwise it comes from centred sums
(see `_std`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING

from pyspark.sql import Column, Window
from pyspark.sql import functions as F

from altaviz.engines.spark_engine.schema import conform
from altaviz.lake.schema import gold_schema
from altaviz.profiles.model import Profile
from altaviz.profiles.spec import STATUS_LEVELS, FeatureSpec, RollingFeature, StatusRule, feature_spec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

US = 1_000_000
INF, NAN = float("inf"), float("nan")


def _divide(left: Column, right: Column) -> Column:
    """IEEE division (x / 0 = ±inf, 0 / 0 = NaN) as the Polars engine computes it; Spark would give null."""
    by_zero = F.when(left > 0, F.lit(INF)).when(left < 0, F.lit(-INF)).otherwise(F.lit(NAN))
    return F.when(right == 0, by_zero).otherwise(left / right)


_OPS = {
    "sub": lambda a, b: a - b,
    "add": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "div": _divide,
}


def _centre(profile: Profile, sensor: str) -> Column:
    """A per-asset constant near the sensor's typical value: the middle of its normal band (times the metadata
    column for `relative_to` sensors). Sums of squares are taken around it, which keeps the variance accurate."""
    spec = profile.sensors[sensor]
    mid = (spec.normal_band[0] + spec.normal_band[1]) / 2
    return F.col(spec.relative_to) * F.lit(mid) if spec.relative_to else F.lit(mid)


def _std(x: Column, centre: Column, window: Window, required: bool) -> Column:
    """Sample std from centred window sums (sum and sum of squares of x - centre), 0 where the window holds one
    value only, null below 2 readings. Sail's sliding stddev drifts by retracting rows (1.7e-9 relative was seen
    on 0.07 degF over 200 degF); centred sums keep the error near 1e-12 here."""
    d = x - centre
    n = F.count(F.lit(1)).over(window)
    s1, s2 = F.sum(d).over(window), F.sum(d * d).over(window)
    var = F.greatest(s2 - s1 * s1 / n, F.lit(0.0)) / (n - F.lit(1))
    flat = F.max(x).over(window) == F.min(x).over(window)
    if not required:  # a required sensor is never null in silver (rule 7): no null count needed
        flat = flat & (F.count(x).over(window) == n)
    flat = F.coalesce(flat, F.lit(False))
    return F.when(n < 2, F.lit(None).cast("double")).when(flat, F.lit(0.0)).otherwise(F.sqrt(var))


def _rolling(f: RollingFeature, by_time: Window, profile: Profile) -> Column:
    window = by_time.rangeBetween(-(f.seconds * US - 1), 0)
    x = F.col(f.sensor)
    if f.stat == "mean":
        return F.avg(x).over(window)
    if f.stat == "max":
        return F.max(x).over(window)
    if f.stat == "min":
        return F.min(x).over(window)
    if f.stat == "std":
        return _std(x, _centre(profile, f.sensor), window, profile.sensors[f.sensor].required)
    raise ValueError(f"rolling feature {f.name}: unknown statistic {f.stat!r} (expected mean, std, max or min)")


def _rate(sensor: str, seconds: int, by_time: Window, t_us: Column) -> Column:
    """(x_t - x_ref) / hours(t - t_ref), ref = the latest reading in [t - 2w, t - w] of the same asset."""
    w = seconds * US
    ref = by_time.rangeBetween(-2 * w, -w)
    x_ref, t_ref = F.last(F.col(sensor)).over(ref), F.last(t_us).over(ref)
    hours = (t_us - t_ref).cast("double") / F.lit(3.6e9)
    return F.when(t_ref.isNotNull(), (F.col(sensor) - x_ref) / hours)


def _status(rule: StatusRule) -> Column:
    x = F.col(rule.sensor)
    expr = None
    for severity, side, value in rule.thresholds:  # critical boundaries come first
        bound = F.col(rule.relative_to) * F.lit(value) if rule.relative_to else F.lit(value)
        cond = x >= bound if side == "high" else x <= bound
        expr = F.when(cond, F.lit(severity)) if expr is None else expr.when(cond, F.lit(severity))
    return F.lit("normal") if expr is None else expr.otherwise(F.lit("normal"))


def _health(spec: FeatureSpec, statuses: dict[str, Column]) -> Column:
    if not spec.statuses:
        return F.lit("normal")
    rank = {level: i for i, level in enumerate(STATUS_LEVELS)}

    def level(c: Column) -> Column:
        out = F.when(c == F.lit(STATUS_LEVELS[-1]), F.lit(rank[STATUS_LEVELS[-1]]))
        for name in reversed(STATUS_LEVELS[:-1]):
            out = out.when(c == F.lit(name), F.lit(rank[name]))
        return out

    ranks = [level(statuses[s.name]) for s in spec.statuses]
    worst = F.greatest(*ranks) if len(ranks) > 1 else ranks[0]
    out = F.when(worst == F.lit(0), F.lit(STATUS_LEVELS[0]))
    for i, name in enumerate(STATUS_LEVELS[1:], start=1):
        out = out.when(worst == F.lit(i), F.lit(name))
    return out


def build_features(silver: DataFrame, profile: Profile, dates: Iterable[date] | None = None) -> DataFrame:
    """silver (+ lookback) -> gold rows for `dates` (all dates of the input when None)."""
    spec = feature_spec(profile)
    aid, ts = profile.id_column, profile.time_column
    t_us = F.unix_micros(F.col(ts))
    by_time = Window.partitionBy(aid).orderBy(t_us)
    statuses = {s.name: _status(s) for s in spec.statuses}
    dow = ((F.dayofweek(F.col(ts)) + F.lit(5)) % F.lit(7)) + F.lit(1)  # ISO: Monday = 1
    features = silver.select(
        "*",
        *[_rolling(f, by_time, profile).alias(f.name) for f in spec.rolling],
        *[_rate(r.sensor, r.seconds, by_time, t_us).alias(r.name) for r in spec.rates],
        *[_OPS[d.op](F.col(d.left), F.col(d.right)).alias(d.name) for d in spec.derived],
        *[col.alias(name) for name, col in statuses.items()],
        _health(spec, statuses).alias("health_status"),
        F.hour(F.col(ts)).alias("hour_of_day"),
        dow.alias("day_of_week"),
        (dow >= F.lit(6)).alias("is_weekend"),
    )
    if dates is not None:
        wanted = sorted(set(dates))
        features = features.filter(F.col("date").isin(wanted))
    return conform(features, gold_schema(profile))

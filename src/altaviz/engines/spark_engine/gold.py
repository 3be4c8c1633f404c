"""Gold stage rendered in Spark: the profile's feature spec over silver readings.

Input: silver rows of the target dates plus `FeatureSpec.lookback` of history before them.
Output: one gold row per silver reading of the target dates, columns in `gold_schema(profile)` order.

Windows (t - w, t] per asset are located without range frames (see `windows`: Sail evaluates a `rangeBetween`
frame 4-6 times slower than a row frame, per expression): every row learns the first row of each of its
windows (rows m + 1 .. r) and fetches that row's prefix values with one join per window length.

  mean, std   sums of x - centre and (x - centre)^2 from prefix sums that restart at every (asset, day), combined
              in the Polars engine's order (`_window_sum`), so both engines compute bit-identical Float64 values;
              std is null below 2 readings and 0 where the window holds one value only (the row before the
              current run of equal values, a running max per sensor, lies outside the window)
  max, min    from time buckets (`windows.bucket_length`), exact; range windows when the data is too
              sparse for buckets
  rate        (x_t - x_ref) / hours(t - t_ref), ref = the row just before the window (t - w, t], when it is no
              older than t - 2w
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from typing import TYPE_CHECKING

from pyspark.sql import Column, Window
from pyspark.sql import functions as F

from altaviz.engines.spark_engine import windows as W
from altaviz.engines.spark_engine.schema import conform
from altaviz.lake.schema import gold_schema
from altaviz.profiles.model import Profile
from altaviz.profiles.spec import STATUS_LEVELS, FeatureSpec, StatusRule, feature_spec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

US = W.US
DAY = 86_400
EPOCH = date(1970, 1, 1)
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


def _days_back(seconds: int) -> int:
    """How many days before a row's day the first row of its window can lie."""
    return -(-seconds // DAY)


def _moment(profile: Profile, sensor: str, moment: str) -> Column:
    """x - centre (moment "1") or its square ("2"), as the Polars engine's prefix sums add them."""
    d = F.col(sensor) - _centre(profile, sensor)
    return d if moment == "1" else d * d


def _prefix(profile: Profile, sensor: str, moment: str) -> Column:
    """P: the day's prefix sum up to and including the row (E + x, the same addition a running sum makes; E is
    0, not null, at the day's first row)."""
    return F.col(f"_E{moment}:{sensor}") + _moment(profile, sensor, moment)


def _window_sum(profile: Profile, moment: str, sensor: str, seconds: int) -> Column:
    """Sum of a centred moment over (t - w, t], in the Polars engine's order of additions
    (`polars_engine.windows.window_sums`): same day: P[i] - E[j]; from b days back: the rest of the first row's
    day (T[j] - E[j]), then every whole day in between, then P[i]. E = prefix before the row within its day (0 at
    the day's first row), P = E + x, T-d = the total of the day d calendar days before the row's day."""
    at = f"@{seconds}"
    p_i = F.col(f"_P{moment}:{sensor}")  # computed once per row before the features (build_features)
    e_j = F.col(f"_E{moment}:{sensor}{at}")  # the window's first row always exists: never null
    back = F.col(f"_back{at}")
    out = F.when(back == F.lit(0), p_i - e_j)
    for b in range(1, _days_back(seconds) + 1):
        across = F.col(f"_T{moment}-{b}:{sensor}") - e_j
        for m in range(1, b):  # the days in between, oldest first; a day without readings adds nothing
            between = F.col(f"_T{moment}-{b - m}:{sensor}")
            across = F.when(between.isNull(), across).otherwise(across + between)
        last = b == _days_back(seconds)  # back is at most that: ELSE, one comparison fewer
        out = out.otherwise(across + p_i) if last else out.when(back == F.lit(b), across + p_i)
    return out


def _count(seconds: int) -> Column:
    return (F.col(W.R) - F.col(W.start_column(seconds))).cast("double")


def _mean(profile: Profile, sensor: str, seconds: int) -> Column:
    return _window_sum(profile, "1", sensor, seconds) / _count(seconds) + _centre(profile, sensor)


def _std(profile: Profile, sensor: str, seconds: int) -> Column:
    """Sample std as the Polars engine computes it: ((s2 - s1 * s1 / n) clipped at 0) / (n - 1), square root."""
    n, s1, s2 = _count(seconds), _window_sum(profile, "1", sensor, seconds), _window_sum(profile, "2", sensor, seconds)
    var = F.greatest(s2 - s1 * s1 / n, F.lit(0.0)) / (n - F.lit(1.0))
    run = F.col(f"_run:{sensor}")  # time of the row before the current run of equal values
    flat = run.isNull() | (run <= F.col(W.T_US) - F.lit(seconds * US))
    # var * 0 = 0 where flat, var * 1 = var elsewhere (var >= 0): one CASE branch, not three (Sail filters every
    # column of the wide feature frame once per branch)
    return F.when(n >= F.lit(2.0), F.sqrt(var * (~flat).cast("double")))


def _rate(sensor: str, seconds: int) -> Column:
    """(x_t - x_ref) / hours(t - t_ref), ref = the row before the window (t - w, t], no older than t - 2w."""
    at = f"@{seconds}"
    lag = F.col(W.T_US) - F.col(f"_lag_t{at}")
    hours = lag.cast("double") / F.lit(3.6e9)
    valid = F.col(f"_lag_t{at}").isNotNull() & (lag <= F.lit(2 * seconds * US))
    return F.when(valid, (F.col(sensor) - F.col(f"_lag:{sensor}{at}")) / hours)


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


def _spacing(silver: DataFrame, profile: Profile) -> float:
    """Typical seconds between an asset's readings (one small aggregation; sizes the max/min time buckets)."""
    t = F.unix_micros(F.col(profile.time_column))
    r = silver.agg(
        F.count(F.lit(1)).alias("n"),
        F.countDistinct(profile.id_column).alias("assets"),
        ((F.max(t) - F.min(t)) / F.lit(US)).alias("span"),
    ).first()
    if r is None or not r["n"] or r["span"] is None:
        return 0.0
    return float(r["span"]) * int(r["assets"]) / int(r["n"])


def _join(frame: DataFrame, other: DataFrame, keys: dict[str, str], how: str = "inner") -> DataFrame:
    """frame joined with other on frame[k] == other[v] for k, v in keys; other's key columns are dropped."""
    renamed = other.select(*[F.col(c).alias(f"_o:{c}") if c in keys.values() else F.col(c) for c in other.columns])
    cond = None
    for left, right in keys.items():
        c = F.col(left) == F.col(f"_o:{right}")
        cond = c if cond is None else cond & c
    return frame.join(renamed, cond, how).drop(*[f"_o:{c}" for c in keys.values()])


class _Plan:
    """What the feature spec needs, per sensor and window length."""

    def __init__(self, spec: FeatureSpec, spacing: float) -> None:
        rolling = spec.rolling
        self.moments = sorted({f.sensor for f in rolling if f.stat in ("mean", "std")})
        self.changes = sorted({f.sensor for f in rolling if f.stat == "std"})
        self.rated = sorted({r.sensor for r in spec.rates})
        self.lagged = sorted(set(self.changes) | set(self.rated))
        self.extremes = {f"_{op}": (op, sorted({f.sensor for f in rolling if f.stat == op})) for op in ("max", "min")}
        self.extremes = {p: v for p, v in self.extremes.items() if v[1]}
        self.lengths = sorted({f.seconds for f in rolling} | {r.seconds for r in spec.rates})
        self.extreme_lengths = sorted({f.seconds for f in rolling if f.stat in ("max", "min")})
        self.bucket = W.bucket_length(self.extreme_lengths, spacing) if self.extreme_lengths else 0
        self.days_back = max([_days_back(f.seconds) for f in rolling if f.stat in ("mean", "std")] + [0])

    def payload(self, spec: FeatureSpec, seconds: int) -> list[str]:
        """Columns of a window's first row that the features of this window length read."""
        feats = [f for f in spec.rolling if f.seconds == seconds]
        cols = ["_q"]
        for s in sorted({f.sensor for f in feats if f.stat in ("mean", "std")}):
            cols += [f"_E1:{s}", f"_E2:{s}"]
        rates = sorted({r.sensor for r in spec.rates if r.seconds == seconds})
        if rates:
            cols += ["_lag_t", *[f"_lag:{s}" for s in rates]]
        for p, (op, _) in self.extremes.items() if self.bucket else ():
            ext = sorted({f.sensor for f in feats if f.stat == op})
            cols += [f"{p}_suf:{s}" for s in ext]
        if self.bucket and any(f.stat in ("max", "min") for f in feats):
            cols.append("_bucket")
        return list(dict.fromkeys(cols))


def _prepare(silver: DataFrame, profile: Profile, spec: FeatureSpec, plan: _Plan) -> DataFrame:
    """Row index, calendar day number, centred values, previous values, bucket; then the start of each sensor's
    run of equal values; then the per-day prefix sums (the only running aggregates; everything else is row-local
    or a join). In this order the rows are sorted twice: by (asset, time), then by (asset, day, time)."""
    aid = profile.id_column
    by = W.by_asset(aid)
    frame = silver.select("*", F.unix_micros(F.col(profile.time_column)).alias(W.T_US))
    cols: list[Column | str] = ["*", F.row_number().over(by).cast("long").alias(W.R)]
    if plan.moments:  # a window's first row lies _q - _q@w calendar days back (a row-local value, not a rank)
        cols.append(F.datediff(F.col("date"), F.lit(EPOCH)).cast("long").alias("_q"))
    cols += [_moment(profile, s, k).alias(f"_x{k}:{s}") for s in plan.moments for k in "12"]
    cols += [F.lag(s).over(by).alias(f"_lag:{s}") for s in plan.lagged]
    if plan.rated or plan.changes:
        cols.append(F.lag(W.T_US).over(by).alias("_lag_t"))
    if plan.bucket:
        g = F.lit(plan.bucket * US)
        cols.append(((F.col(W.T_US) - F.pmod(F.col(W.T_US), g)) / g).cast("long").alias("_bucket"))
    frame = frame.select(*cols)
    cols = [W.run_start(F.col(s), F.col(f"_lag:{s}"), F.col("_lag_t"), by).alias(f"_run:{s}") for s in plan.changes]
    if plan.extremes and not plan.bucket:  # readings too sparse for buckets: range windows
        agg = {"max": F.max, "min": F.min}
        cols += [
            agg[f.stat](f.sensor).over(by.rangeBetween(-(f.seconds * US - 1), 0)).alias(f"_rng:{f.name}")
            for f in spec.rolling
            if f.stat in ("max", "min")
        ]
    if cols:  # same partitioning and order as the first select: no second sort
        frame = frame.select("*", *cols)
    day = Window.partitionBy(aid, "date").orderBy(W.T_US).rowsBetween(Window.unboundedPreceding, -1)
    # null at the day's first row (empty frame): stored as 0 once here rather than coalesced in every feature
    cols = [
        F.coalesce(F.sum(f"_x{k}:{s}").over(day), F.lit(0.0)).alias(f"_E{k}:{s}") for s in plan.moments for k in "12"
    ]
    if cols:
        frame = frame.select("*", *cols)
    # the centred values are cheap to recompute; previous values are read only for rates
    unused = [f"_x{k}:{s}" for s in plan.moments for k in "12"]
    unused += [f"_lag:{s}" for s in plan.lagged if s not in plan.rated]
    return frame.drop(*unused)


def _day_totals(rows: DataFrame, profile: Profile, plan: _Plan) -> DataFrame:
    """(aid, date, _T{k}-{d}:{s}): the prefix sums at the last row of the asset's day `date - d` (null when that
    day has no readings), d = 1 .. days_back calendar days (a window's first row lies at most that far back)."""
    aid = profile.id_column
    last = rows.groupBy(aid, "date").agg(F.max(W.R).alias("_last"))
    totals = [_prefix(profile, s, k).alias(f"_T{k}:{s}") for s in plan.moments for k in "12"]
    days = _join(last, rows.select(aid, W.R, *totals), {aid: aid, "_last": W.R})
    out = days.select(aid, "date")
    for d in range(1, plan.days_back + 1):  # day `date - d` joined as if it were `date`
        ago = [F.col(f"_T{k}:{s}").alias(f"_T{k}-{d}:{s}") for s in plan.moments for k in "12"]
        out = _join(
            out, days.select(aid, F.date_add("date", d).alias("date"), *ago), {aid: aid, "date": "date"}, "left"
        )
    return out


def build_features(
    silver: DataFrame,
    profile: Profile,
    dates: Iterable[date] | None = None,
    stage: Callable[[DataFrame], DataFrame] | None = None,
) -> DataFrame:
    """silver (+ lookback) -> gold rows for `dates` (all dates of the input when None).

    The prepared rows (row index, prefix sums, change counts, bucket extremes) are read by several joins; Spark
    Connect servers such as Sail recompute a shared input for every reader, so `stage` (e.g. write Parquet and
    read it back) is applied to them once when given."""
    spec = feature_spec(profile)
    aid, ts = profile.id_column, profile.time_column
    plan = _Plan(spec, _spacing(silver, profile) if any(f.stat in ("max", "min") for f in spec.rolling) else 0.0)
    wanted = F.col("date").isin(sorted(set(dates))) if dates is not None else None
    rows = _prepare(silver, profile, spec, plan)
    if plan.extremes and plan.bucket:
        how = {p: op for p, (op, _) in plan.extremes.items()}
        ext_cols = sorted({c for _, cols in plan.extremes.values() for c in cols})
        rows = _join(rows, W.within_bucket(rows, aid, "_bucket", ext_cols, how), {aid: aid, W.R: W.R})
    if stage is not None:
        rows = stage(rows)
    own = rows if wanted is None else rows.filter(wanted)
    # the windows' first rows are fetched into a narrow frame (joins copy every column they carry), which
    # joins the wanted rows once at the end
    keys = [aid, W.R, "date"] + (["_q"] if plan.moments else []) + (["_bucket"] if plan.bucket else [])
    fetched = own.select(*keys)
    if plan.lengths:
        fetched = _join(fetched, W.window_starts(rows, aid, plan.lengths, wanted), {aid: aid, W.R: W.R})
    if plan.extremes and plan.bucket:
        spans = sorted({s // plan.bucket for s in plan.extreme_lengths})
        mids = W.whole_buckets(rows, aid, "_bucket", ext_cols, how, spans)
        if len(mids.columns) > 2:
            fetched = _join(fetched, mids, {aid: aid, "_bucket": "_bucket"}, "left")
    if plan.moments and plan.days_back:
        fetched = _join(fetched, _day_totals(rows, profile, plan), {aid: aid, "date": "date"})
    for seconds in plan.lengths:
        cols = plan.payload(spec, seconds)
        first = F.col(W.start_column(seconds)) + F.lit(1)
        fetched = W.fetch(fetched, rows, aid, first, {c: f"{c}@{seconds}" for c in cols})
    main = _join(own, fetched.drop(*keys[2:]), {aid: aid, W.R: W.R})
    if plan.moments:  # read by several features each: one projection first, so each is computed once per row
        prefixes = [_prefix(profile, s, k).alias(f"_P{k}:{s}") for s in plan.moments for k in "12"]
        backs = [(F.col("_q") - F.col(f"_q@{w}")).alias(f"_back@{w}") for w in plan.lengths]
        main = main.select("*", *prefixes, *backs)

    features = []
    for f in spec.rolling:
        if f.stat == "mean":
            col = _mean(profile, f.sensor, f.seconds)
        elif f.stat == "std":
            col = _std(profile, f.sensor, f.seconds)
        elif f.stat in ("max", "min") and not plan.bucket:
            col = F.col(f"_rng:{f.name}")
        elif f.stat in ("max", "min"):
            p = f"_{f.stat}"
            at = f"@{f.seconds}"
            col = W.extreme_over_window(
                p,
                f.stat,
                f.sensor,
                f.seconds // plan.bucket,
                F.col(f"_bucket{at}"),
                F.col("_bucket"),
                F.col(f"{p}_suf:{f.sensor}{at}"),
            )
        else:
            raise ValueError(f"rolling feature {f.name}: unknown statistic {f.stat!r} (expected mean, std, max or min)")
        features.append(col.alias(f.name))
    statuses = {s.name: _status(s) for s in spec.statuses}
    dow = ((F.dayofweek(F.col(ts)) + F.lit(5)) % F.lit(7)) + F.lit(1)  # ISO: Monday = 1
    out = main.select(
        "*",
        *features,
        *[_rate(r.sensor, r.seconds).alias(r.name) for r in spec.rates],
        *[_OPS[d.op](F.col(d.left), F.col(d.right)).alias(d.name) for d in spec.derived],
        *[col.alias(name) for name, col in statuses.items()],
        _health(spec, statuses).alias("health_status"),
        F.hour(F.col(ts)).alias("hour_of_day"),
        dow.alias("day_of_week"),
        (dow >= F.lit(6)).alias("is_weekend"),
    )
    return conform(out, gold_schema(profile))

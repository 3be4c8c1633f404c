"""Time-window building blocks for the Spark engine that run in linear time on Sail (and on any Spark).

Sail (DataFusion) evaluates every window expression in its own operator, row by row; a `rangeBetween` frame
costs about 3 µs per row and expression (measured on Sail 0.7), 4-6 times a `rowsBetween` frame and over ten
times `row_number` / `lag`. A gold stage of ~130 range-window expressions therefore took
minutes. These helpers express time windows without range frames:

  row index      r = row_number() per asset in time order (1-based)
  window start   m = the number of the asset's rows at or before t - w, so (t - w, t] is rows m + 1 .. r.
                 One sort of the rows together with one probe row per (row, window length) at t - w; a probe's
                 position among all rows less its position among the probes gives m (`window_starts`)
  fetch          values of row m + 1 (the first row of the window) by an equi-join on (asset, r) (`fetch`)
  sums           prefix sums restarting at every (asset, day), exclusive of the current row (a cumulative
                 `rowsBetween(unboundedPreceding, -1)` frame), so a window sum is built from two or three prefix
                 values in exactly the order the Polars engine adds them (`altaviz.engines.polars_engine.windows`)
  extremes       max/min over (t - w, t] from time buckets of g seconds, g a divisor of every window length sized
                 to the data (`bucket_length`): the rest of the first row's bucket, the whole buckets in between (a
                 `rowsBetween` frame over a dense per-bucket table) and the current bucket up to the row
"""

from __future__ import annotations

from math import gcd
from typing import TYPE_CHECKING

from pyspark.sql import Column, Window
from pyspark.sql import functions as F

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

US = 1_000_000
R, T_US = "_r", "_t_us"  # row index per asset (1-based, time order); epoch microseconds


def by_asset(aid: str) -> Window:
    return Window.partitionBy(aid).orderBy(T_US)


def start_column(seconds: int) -> str:
    """Column of `window_starts`: the number of the asset's rows at or before t - w."""
    return f"_m{seconds}"


def window_starts(frame: DataFrame, aid: str, lengths: list[int], wanted: Column | None = None) -> DataFrame:
    """(aid, R, _m{w} for every w) for the rows where `wanted` holds (all rows when None).

    `frame` has aid, R and T_US. Each wanted row gets one probe per window length at T_US - w; real rows sort
    before probes at the same time, so the number of real rows before a probe (the rows at or before t - w) is
    its position among all rows less its position among the probes: two `row_number`s over one sort (Sail
    evaluates a running count row by row, several times slower)."""
    real = frame.select(aid, T_US, F.lit(0).alias("_kind"), F.lit(None).cast("long").alias(R))
    probes_of = frame if wanted is None else frame.filter(wanted)
    parts = [real]
    for k, seconds in enumerate(lengths, start=1):
        parts.append(probes_of.select(aid, (F.col(T_US) - F.lit(seconds * US)).alias(T_US), F.lit(k).alias("_kind"), R))
    union = parts[0]
    for p in parts[1:]:
        union = union.unionByName(p)
    order = Window.partitionBy(aid).orderBy(T_US, "_kind")
    numbered = union.select(aid, T_US, R, "_kind", F.row_number().over(order).alias("_p"))
    probes = numbered.filter(F.col("_kind") > F.lit(0))
    counted = probes.select(aid, R, "_kind", (F.col("_p") - F.row_number().over(order)).alias("_m"))
    return counted.groupBy(aid, R).agg(
        *[
            F.max(F.when(F.col("_kind") == F.lit(k), F.col("_m"))).cast("long").alias(start_column(s))
            for k, s in enumerate(lengths, start=1)
        ]
    )


def run_start(value: Column, previous: Column, previous_time: Column, order: Window) -> Column:
    """Time of the row before the current run of equal values (a null breaks a run; null when the run starts at
    the partition's first row): a running max of the previous row's time at every change. A window (t - w, t]
    holds one value of the sensor iff this time is null or at most t - w. `order` is the partition's time
    order; `previous` and `previous_time` are the lagged value and time over it."""
    changed = value.isNull() | previous.isNull() | (value != previous)
    return F.max(F.when(changed, previous_time)).over(order.rowsBetween(Window.unboundedPreceding, 0))


def fetch(frame: DataFrame, rows: DataFrame, aid: str, at: Column, columns: dict[str, str]) -> DataFrame:
    """`frame` joined with the columns of row `at` (an expression over `frame`) of the same asset from `rows`
    (which has aid and R); `columns` maps a column of `rows` to its name in the result. Every row of `frame` is
    kept: no such row gives nulls."""
    other = rows.select(
        F.col(aid).alias("_f_aid"), F.col(R).alias("_f_r"), *[F.col(c).alias(n) for c, n in columns.items()]
    )
    keyed = frame.withColumn("_f_at", at)
    # a right join: the narrow fetched columns are the build side (a hash join holds its left side in memory),
    # not the wide frame (at 1.5 M rows the three fetches built 0.4 / 0.8 / 1.2 GB, now 0.3 / 0.3 / 0.4 GB)
    joined = other.join(keyed, (F.col(aid) == F.col("_f_aid")) & (F.col("_f_at") == F.col("_f_r")), "right")
    return joined.drop("_f_aid", "_f_r", "_f_at")


ROWS_PER_BUCKET = 8  # aim: a bucket holds about this many of an asset's readings


def bucket_length(seconds: list[int], spacing: float) -> int:
    """g in seconds: a divisor of every window length (so a window is whole buckets plus two partial ones), as
    large as possible while a bucket holds about ROWS_PER_BUCKET readings at `spacing` seconds between an asset's
    readings (the within-bucket self-join grows with rows per bucket; the dense bucket table with buckets per
    reading). 0 when no such divisor is coarser than a quarter of the spacing: use range windows then."""
    g = 0
    for s in seconds:
        g = gcd(g, s)
    target = max(int(ROWS_PER_BUCKET * spacing), 1)
    if g <= target:
        best = g
    else:
        divisors = {d for k in range(1, int(g**0.5) + 1) if g % k == 0 for d in (k, g // k)}
        best = max(d for d in divisors if d <= target)
    return best if best * 4 >= spacing else 0


def within_bucket(frame: DataFrame, aid: str, bucket: str, columns: list[str], how: dict[str, str]) -> DataFrame:
    """(aid, R, prefix and suffix extremes inside each row's bucket) for every row of `frame`.

    `how` maps an output prefix ("_max", "_min") to "max" / "min"; for a column c the result has
    f"{p}_pre:{c}" (first row of the bucket .. this row) and f"{p}_suf:{c}" (this row .. last row of the bucket).
    A self-join of the rows of each (asset, bucket): a bucket holds few rows (g is at most the shortest window)."""
    left = frame.select(aid, bucket, R)
    right = frame.select(F.col(aid).alias("_b_aid"), F.col(bucket).alias("_b_b"), F.col(R).alias("_b_r"), *columns)
    pairs = left.join(right, (F.col(aid) == F.col("_b_aid")) & (F.col(bucket) == F.col("_b_b")))
    agg = {"max": F.max, "min": F.min}
    before, after = F.col("_b_r") <= F.col(R), F.col("_b_r") >= F.col(R)
    exprs = []
    for p, op in how.items():
        for c in columns:
            exprs.append(agg[op](F.when(before, F.col(c))).alias(f"{p}_pre:{c}"))
            exprs.append(agg[op](F.when(after, F.col(c))).alias(f"{p}_suf:{c}"))
    return pairs.groupBy(aid, R).agg(*exprs)


def whole_buckets(
    frame: DataFrame, aid: str, bucket: str, columns: list[str], how: dict[str, str], spans: list[int]
) -> DataFrame:
    """(aid, bucket, f"{p}_mid{k}:{c}") per bucket b of each asset: the extreme of c over the whole buckets
    b - k + 1 .. b - 1 (k - 1 buckets before b; null when k = 1 or they hold no row), for every k in `spans`.

    Per-bucket extremes on a dense table of the asset's buckets (empty ones null), then a `rowsBetween` frame."""
    agg = {"max": F.max, "min": F.min}
    per = frame.groupBy(aid, bucket).agg(*[agg[op](c).alias(f"{p}:{c}") for p, op in how.items() for c in columns])
    bounds = per.groupBy(aid).agg(F.min(bucket).alias("_lo"), F.max(bucket).alias("_hi"))
    dense = bounds.select(F.col(aid).alias("_d_aid"), F.explode(F.sequence("_lo", "_hi")).alias("_d_b"))
    dense = dense.join(per, (F.col("_d_aid") == F.col(aid)) & (F.col("_d_b") == F.col(bucket)), "left").select(
        F.col("_d_aid").alias(aid), F.col("_d_b").alias(bucket), *[f"{p}:{c}" for p in how for c in columns]
    )
    order = Window.partitionBy(aid).orderBy(bucket)
    out = [
        agg[op](f"{p}:{c}").over(order.rowsBetween(-(k - 1), -1)).alias(f"{p}_mid{k}:{c}")
        for k in spans
        if k > 1
        for p, op in how.items()
        for c in columns
    ]
    return dense.select(aid, bucket, *out)


def extreme_over_window(
    p: str, op: str, c: str, k: int, first_bucket: Column, own_bucket: Column, suffix_at_first: Column
) -> Column:
    """max/min of c over (t - w, t], w = k buckets: the current bucket up to the row, the whole buckets in
    between and the rest of the first row's bucket (when that is an earlier bucket). Null only when every
    value is null."""
    parts = [F.col(f"{p}_pre:{c}"), F.when(first_bucket < own_bucket, suffix_at_first)]
    if k > 1:
        parts.append(F.col(f"{p}_mid{k}:{c}"))
    return F.greatest(*parts) if op == "max" else F.least(*parts)

"""Silver stage rendered in Spark: validate, deduplicate, quarantine with reasons, flag stuck sensors, enrich.

The rules and their order are those of `altaviz.profiles.spec` (see its docstring); this module only renders them,
with the same semantics as the Polars engine. Every bronze row is classified in a few selects over one frame:

  1. broadcast left join of the fleet metadata (known ids + the columns silver is enriched with)
  2. reason of rules 1-5 (first failing, CASE WHEN in rule order)
  3. duplicates: among rows that passed 1-5, per asset in (timestamp, _ingested_at, _source_file, _source_row)
     order, a row with the timestamp of the row before it is dropped and counted
  4. reason of rules 7-9, then per-(asset, date) mean / sample std over the rows that passed 1-9, rule 10
  5. is_stuck over the time window (t - w, t] within the row's date, from row-frame windows (`_stuck`)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import TYPE_CHECKING

from pyspark.sql import Column, Window
from pyspark.sql import functions as F

from altaviz.engines.spark_engine import windows as W
from altaviz.engines.spark_engine.schema import conform
from altaviz.lake.schema import bronze_schema, metadata_schema, quarantine_schema, silver_schema
from altaviz.profiles.model import Profile
from altaviz.profiles.spec import future_tolerance_seconds, range_rules, stuck_window_seconds

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

ORDER_KEYS = ("_ingested_at", "_source_file", "_source_row")
US = 1_000_000
KNOWN = "_known_asset"
REASON, DETAIL = "_reason", "_reason_detail"
DUP = "_duplicate"


@dataclass
class SparkSilverResult:
    """`classified`: every bronze row with its reason (null when kept), duplicate flag and is_stuck."""

    classified: DataFrame
    profile: Profile

    @property
    def silver(self) -> DataFrame:
        keep = F.col(REASON).isNull() & ~F.col(DUP)
        return conform(self.classified.filter(keep), silver_schema(self.profile))

    @property
    def quarantine(self) -> DataFrame:
        return conform(self.classified.filter(F.col(REASON).isNotNull()), quarantine_schema(self.profile))

    @cached_property
    def duplicates_dropped(self) -> dict[date, int]:
        rows = self.classified.filter(F.col(DUP)).groupBy("date").count().collect()
        return {r["date"]: int(r["count"]) for r in rows}

    @property
    def total_duplicates(self) -> int:
        return sum(self.duplicates_dropped.values())


def _case(branches: list[tuple[Column, Column]]) -> Column:
    """CASE WHEN c1 THEN v1 WHEN c2 THEN v2 ... END (null when none holds)."""
    cond, value = branches[0]
    out = F.when(cond, value)
    for cond, value in branches[1:]:
        out = out.when(cond, value)
    return out


def first_failing(checks: list[tuple[Column, str | Column, Column]]) -> tuple[Column, Column]:
    """(reason, detail) of the first check that holds (a null condition does not hold), else nulls. A code is a
    string or a column (a reason read from the row).

    Consecutive checks with the same string code give the reason as one condition, their OR (the first check
    that holds is in the first group whose OR holds): a CASE with a branch per code, not per check. Sail filters
    the whole batch for every CASE branch; its six-branch outlier reason took ~3.7 s per 4.5 M rows. The detail
    stays one branch per check: nesting it under its group's OR made JVM Spark's classification ~20 s slower."""
    if not checks:
        return F.lit(None).cast("string"), F.lit(None).cast("string")
    groups: list[tuple[Column, str | Column]] = []  # (OR of the group's conditions, code)
    for cond, code, _ in checks:
        if groups and isinstance(code, str) and isinstance(groups[-1][1], str) and groups[-1][1] == code:
            groups[-1] = (groups[-1][0] | cond, code)
        else:
            groups.append((cond, code))
    reason = _case([(any_, F.lit(code) if isinstance(code, str) else code) for any_, code in groups])
    return reason, _case([(cond, det.cast("string")) for cond, _, det in checks])


def _pre_dedup_checks(profile: Profile) -> list[tuple[Column, str | Column, Column]]:
    """Rules 1-5: the reader's parse error, then missing id, timestamp, unknown asset, future timestamp."""
    aid, ts = F.col(profile.id_column), F.col(profile.time_column)
    tolerance_us = future_tolerance_seconds(profile) * US
    return [
        (F.col("_parse_error").isNotNull(), F.col("_parse_error"), F.col("_parse_detail")),  # the error is the reason
        (aid.isNull() | aid.rlike(r"^\s*$"), "missing_asset_id", F.lit(profile.id_column)),
        (ts.isNull(), "unparseable_timestamp", F.lit("missing")),
        (F.col(KNOWN).isNull(), "unknown_asset", aid),
        (
            F.unix_micros(ts) > F.unix_micros(F.col("_ingested_at")) + F.lit(tolerance_us),
            "future_timestamp",
            F.date_format(ts, "yyyy-MM-dd'T'HH:mm:ss'Z'"),
        ),
    ]


def _value_checks(profile: Profile) -> list[tuple[Column, str, Column]]:
    """Rules 7-9 in the spec's order: nulls, non-finite values, physical range."""
    checks = [(F.col(s).isNull(), "null_value", F.lit(s)) for s in profile.required_sensors]
    inf = F.lit(float("inf"))
    for s in profile.sensor_names:
        x = F.col(s)
        checks.append((F.isnan(x) | (x == inf) | (x == -inf), "non_finite", F.lit(s)))
    for rule in range_rules(profile):
        x = F.col(rule.sensor)
        checks.append(((x < F.lit(rule.low)) | (x > F.lit(rule.high)), "out_of_physical_range", F.lit(rule.sensor)))
    return checks


def _stuck(frame: DataFrame, profile: Profile, keep: list[str]) -> DataFrame:
    """is_stuck: some sensor unchanged over (t - w, t] (same asset, date and kept-ness) with >= stuck_min_readings
    readings, in two selects of row-frame windows (no range frame: Sail evaluates those ~10x slower per row):

      enough readings   the row stuck_min_readings - 1 before is inside the window (its time > t - w)
      unchanged         the row before the current run of equal values (a null breaks a run) is outside the
                        window (time <= t - w) or absent; a running max of the previous row's time at every change

    The windows are partitioned by asset and kept-ness only: the date is a bound instead (the rows of earlier days
    lie outside the window, their times are before the row's UTC day), so Sail handles a few thousand partitions
    rather than one per asset and day (each window operator cost ~1.7 times as much with the latter)."""
    aid, ts = profile.id_column, profile.time_column
    t = F.col("_t")  # a column, not an expression: both selects' windows then share one sort
    order = Window.partitionBy(aid, "_kept").orderBy(t)
    k = profile.quality.stuck_min_readings
    lags = [F.lag(s).over(order).alias(f"_prev:{s}") for s in profile.sensor_names]
    kept = frame.select(
        *keep, (F.col(REASON).isNull() & ~F.col(DUP)).alias("_kept"), F.unix_micros(F.col(ts)).alias("_t")
    )
    staged = kept.select(
        *keep,
        "_kept",
        "_t",
        F.lag(t).over(order).alias("_prev_t"),
        F.lag(t, max(k - 1, 0)).over(order).alias("_kth_t"),
        *lags,
    )
    # the first row of a partition has no previous value: a change, which run_start records as a null time
    runs = [
        W.run_start(F.col(s), F.col(f"_prev:{s}"), F.col("_prev_t"), order).alias(f"_run:{s}")
        for s in profile.sensor_names
    ]
    staged = staged.select(*keep, "_kept", "_kth_t", *runs, "_t")
    day_start = t - F.pmod(t, F.lit(86_400 * US))  # a kept row's date is its timestamp's UTC day
    since = F.greatest(t - F.lit(stuck_window_seconds(profile) * US), day_start - F.lit(1))  # t - w, in the day
    enough = F.col("_kth_t") > since if k > 1 else F.lit(True)
    flat = [F.col(f"_run:{s}").isNull() | (F.col(f"_run:{s}") <= since) for s in profile.sensor_names]
    any_flat = flat[0]
    for f in flat[1:]:
        any_flat = any_flat | f
    stuck = F.when(F.col("_kept"), F.coalesce(enough & any_flat, F.lit(False)))
    return staged.select(*keep, stuck.otherwise(F.lit(False)).alias("is_stuck"))


def validate(bronze: DataFrame, metadata: DataFrame, profile: Profile) -> SparkSilverResult:
    """bronze rows (any dates) + fleet metadata -> every row classified (see `SparkSilverResult`)."""
    aid, ts = profile.id_column, profile.time_column
    b_cols = list(bronze_schema(profile))
    extra = [c for c in metadata_schema(profile) if c not in b_cols]
    meta = conform(metadata, metadata_schema(profile)).select(
        F.col(aid).alias("_meta_id"), F.lit(True).alias(KNOWN), *extra
    )
    joined = conform(bronze, bronze_schema(profile)).join(F.broadcast(meta), F.col(aid) == F.col("_meta_id"), "left")

    # rules 1-5
    reason, detail = first_failing(_pre_dedup_checks(profile))
    pre = joined.select(*b_cols, *extra, KNOWN, reason.alias(REASON), detail.alias(DETAIL))

    # rule 6: first row of each (asset, timestamp) among rows that passed 1-5, by ingestion order: in time then
    # ingestion order per asset, a row whose previous row has the same timestamp is a duplicate (a window per
    # (asset, timestamp) would make ~one partition per row, which Sail processes ~10x slower)
    passed = F.col(REASON).isNull()
    order = [F.col(ts).asc_nulls_first(), *[F.col(k).asc_nulls_first() for k in ORDER_KEYS]]
    previous = F.lag(F.unix_micros(F.col(ts))).over(Window.partitionBy(aid, passed).orderBy(*order))
    dup = passed & F.coalesce(previous == F.unix_micros(F.col(ts)), F.lit(False))  # never null: ~dup below

    # rules 7-9 on rows that are neither rejected nor duplicates
    v_reason, v_detail = first_failing(_value_checks(profile))
    staged = pre.select(
        *b_cols,
        *extra,
        F.coalesce(dup, F.lit(False)).alias(DUP),
        F.when(passed & ~dup, v_reason).otherwise(F.col(REASON)).alias(REASON),
        F.when(passed & ~dup, v_detail).otherwise(F.col(DETAIL)).alias(DETAIL),
    )

    # rule 10: per (asset, date) mean / sample std over the rows that passed 1-9
    eligible = F.col(REASON).isNull() & ~F.col(DUP)
    group = Window.partitionBy(aid, "date", eligible)
    k = F.lit(profile.quality.outlier_sigma)
    outliers = [
        (F.abs(F.col(s) - F.avg(s).over(group)) > k * F.stddev_samp(s).over(group), "outlier", F.lit(s))
        for s in profile.sensor_names
    ]
    o_reason, o_detail = first_failing(outliers)
    checked = staged.select(
        *b_cols,
        *extra,
        DUP,
        F.when(eligible, o_reason).otherwise(F.col(REASON)).alias(REASON),
        F.when(eligible, o_detail).otherwise(F.col(DETAIL)).alias(DETAIL),
    )

    # flag: stuck sensors over the rows that end in silver, per asset and date
    classified = _stuck(checked, profile, [*b_cols, *extra, DUP, REASON, DETAIL])
    return SparkSilverResult(classified, profile)

"""Silver stage rendered in Polars: validate, deduplicate, quarantine with reasons, flag stuck sensors, enrich.

The rules and their order are those of `altaviz.profiles.spec` (see its docstring); this module only renders them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import reduce

import polars as pl

from altaviz.engines.polars_engine.rolling import rolling_aligned
from altaviz.lake.schema import quarantine_schema, silver_schema
from altaviz.profiles.model import Profile
from altaviz.profiles.spec import future_tolerance_seconds, range_rules, stuck_window_seconds

ORDER_KEYS = ("_ingested_at", "_source_file", "_source_row")


@dataclass
class SilverResult:
    silver: pl.DataFrame
    quarantine: pl.DataFrame
    duplicates_dropped: dict[date, int] = field(default_factory=dict)

    @property
    def total_duplicates(self) -> int:
        return sum(self.duplicates_dropped.values())


def _first_failing(checks: list[tuple[pl.Expr, str, str | pl.Expr]]) -> tuple[pl.Expr, pl.Expr]:
    """(reason, detail) of the first check that holds, else nulls."""
    reason: pl.Expr | pl.Then = pl
    detail: pl.Expr | pl.Then = pl
    for cond, code, det in checks:
        det_expr = det if isinstance(det, pl.Expr) else pl.lit(det)
        reason = reason.when(cond).then(pl.lit(code))
        detail = detail.when(cond).then(det_expr)
    return reason.otherwise(pl.lit(None, pl.String)), detail.otherwise(pl.lit(None, pl.String))


def _pre_dedup_reason(profile: Profile, known_ids: pl.Series) -> tuple[pl.Expr, pl.Expr]:
    """Rules 1-5: the reader's parse error, then id, timestamp, unknown asset, future timestamp."""
    aid, ts = pl.col(profile.id_column), pl.col(profile.time_column)
    tolerance = pl.duration(seconds=future_tolerance_seconds(profile))
    reason, detail = _first_failing(
        [
            (aid.is_null() | (aid.str.strip_chars() == ""), "missing_asset_id", profile.id_column),
            (ts.is_null(), "unparseable_timestamp", "missing"),
            (~aid.is_in(known_ids.implode()), "unknown_asset", aid),
            (
                ts > pl.col("_ingested_at") + tolerance,
                "future_timestamp",
                ts.dt.to_string("%Y-%m-%dT%H:%M:%SZ"),
            ),
        ]
    )
    parse = pl.col("_parse_error").is_not_null()
    return (
        pl.when(parse).then(pl.col("_parse_error")).otherwise(reason),
        pl.when(parse).then(pl.col("_parse_detail")).otherwise(detail),
    )


def _value_checks(profile: Profile) -> list[tuple[pl.Expr, str, str]]:
    checks: list[tuple[pl.Expr, str, str]] = []
    for s in profile.required_sensors:
        checks.append((pl.col(s).is_null(), "null_value", s))
    for s in profile.sensor_names:
        checks.append((pl.col(s).is_nan() | pl.col(s).is_infinite(), "non_finite", s))
    for rule in range_rules(profile):
        x = pl.col(rule.sensor)
        checks.append(((x < rule.low) | (x > rule.high), "out_of_physical_range", rule.sensor))
    return checks


def _outlier_checks(profile: Profile) -> list[tuple[pl.Expr, str, str]]:
    k = profile.quality.outlier_sigma
    keys = [profile.id_column, "date"]
    checks = []
    for s in profile.sensor_names:
        x = pl.col(s)
        deviation = (x - x.mean().over(keys)).abs()
        checks.append(((deviation > k * x.std().over(keys)).fill_null(False), "outlier", s))
    return checks


def _stuck_flags(frame: pl.DataFrame, profile: Profile) -> pl.Series:
    """is_stuck: some sensor has min == max over (t - w, t] with >= stuck_min_readings readings, per asset+date."""
    if frame.height == 0:
        return pl.Series("is_stuck", [], pl.Boolean)
    aggs = [pl.len().alias("_n")]
    for s in profile.sensor_names:
        aggs += [pl.col(s).min().alias(f"_min_{s}"), pl.col(s).max().alias(f"_max_{s}")]
    rolled = rolling_aligned(
        frame,
        time=profile.time_column,
        group_by=[profile.id_column, "date"],
        period_s=stuck_window_seconds(profile),
        aggs=aggs,
    )
    enough = pl.col("_n") >= profile.quality.stuck_min_readings
    flat = [pl.col(f"_min_{s}") == pl.col(f"_max_{s}") for s in profile.sensor_names]
    return rolled.select((enough & reduce(lambda a, b: a | b, flat)).alias("is_stuck")).to_series()


def validate(bronze: pl.DataFrame, metadata: pl.DataFrame, profile: Profile) -> SilverResult:
    """bronze rows (any dates) + fleet metadata -> silver, quarantine and duplicate counts per date."""
    aid, ts = profile.id_column, profile.time_column
    known_ids = metadata.get_column(aid).cast(pl.String)
    reason, detail = _pre_dedup_reason(profile, known_ids)
    frame = bronze.with_columns(_reason=reason, _reason_detail=detail)

    rejected = [frame.filter(pl.col("_reason").is_not_null())]
    ok = frame.filter(pl.col("_reason").is_null()).sort([aid, ts, *ORDER_KEYS])
    first = pl.struct(aid, ts).is_first_distinct()
    dup_counts = ok.filter(~first).group_by("date").len()
    duplicates = {d: int(n) for d, n in dup_counts.iter_rows()}
    ok = ok.filter(first)

    reason, detail = _first_failing(_value_checks(profile))
    ok = ok.with_columns(_reason=reason, _reason_detail=detail)
    rejected.append(ok.filter(pl.col("_reason").is_not_null()))
    ok = ok.filter(pl.col("_reason").is_null())

    reason, detail = _first_failing(_outlier_checks(profile))
    ok = ok.with_columns(_reason=reason, _reason_detail=detail)
    rejected.append(ok.filter(pl.col("_reason").is_not_null()))
    ok = ok.filter(pl.col("_reason").is_null())

    q_schema = quarantine_schema(profile)
    quarantine = pl.concat([r.select(q_schema.names()) for r in rejected]).cast(dict(q_schema))
    quarantine = quarantine.sort(["date", "_source_file", "_source_row"], nulls_last=True)

    ok = ok.with_columns(is_stuck=_stuck_flags(ok, profile))
    meta = metadata.with_columns(pl.col(aid).cast(pl.String))
    extra = [c for c in meta.columns if c not in ok.columns or c == aid]
    silver = ok.join(meta.select(extra), on=aid, how="left", maintain_order="left")
    s_schema = silver_schema(profile)
    silver = silver.select(s_schema.names()).cast(dict(s_schema))
    return SilverResult(silver, quarantine, duplicates)

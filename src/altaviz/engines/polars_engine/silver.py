"""Silver stage rendered in Polars: validate, deduplicate, quarantine with reasons, flag stuck sensors, enrich.

The rules and their order are those of `altaviz.profiles.spec` (see its docstring); this module only renders them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import polars as pl

from altaviz.engines.polars_engine.windows import WindowIndex, change_prefix, flat_in_window, sort_by_asset_time
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


def pre_dedup_checks(profile: Profile, known_ids: pl.Series) -> list[tuple[pl.Expr, str, str | pl.Expr]]:
    """Rules 2-5 (rule 1, the reader's parse error, is applied by `split_by_checks`)."""
    aid, ts = pl.col(profile.id_column), pl.col(profile.time_column)
    tolerance = pl.duration(seconds=future_tolerance_seconds(profile))
    return [
        (aid.is_null() | (aid.str.strip_chars() == ""), "missing_asset_id", profile.id_column),
        (ts.is_null(), "unparseable_timestamp", "missing"),
        (~aid.is_in(known_ids.implode()), "unknown_asset", aid),
        (ts > pl.col("_ingested_at") + tolerance, "future_timestamp", ts.dt.to_string("%Y-%m-%dT%H:%M:%SZ")),
    ]


def value_checks(profile: Profile) -> list[tuple[pl.Expr, str, str]]:
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
    """|x - mean| > k * std against the `_mu_<sensor>` / `_sd_<sensor>` columns of the (asset, date) group."""
    k = profile.quality.outlier_sigma
    return [
        ((pl.col(s) - pl.col(f"_mu_{s}")).abs() > k * pl.col(f"_sd_{s}"), "outlier", s) for s in profile.sensor_names
    ]


def split_by_checks(
    frame: pl.DataFrame, checks: list[tuple[pl.Expr, str, str | pl.Expr]], parse_column: str | None = None
):
    """(passing rows, failing rows with _reason/_reason_detail). The cheap any-check runs on every row; the
    reason of the first failing check is worked out only for the (few) failing rows."""
    conds = [c.fill_null(False) for c, _, _ in checks]
    if parse_column is not None:
        conds.append(pl.col(parse_column).is_not_null())
    mask = frame.select(pl.any_horizontal(conds)).to_series()
    failing = frame.filter(mask)
    reason, detail = _first_failing([(c.fill_null(False), code, det) for c, code, det in checks])
    if parse_column is not None:
        parsed = pl.col(parse_column).is_not_null()
        reason = pl.when(parsed).then(pl.col(parse_column)).otherwise(reason)
        detail = pl.when(parsed).then(pl.col("_parse_detail")).otherwise(detail)
    return frame.filter(~mask), failing.with_columns(_reason=reason, _reason_detail=detail)


def _stuck_flags(frame: pl.DataFrame, profile: Profile) -> pl.Series:
    """is_stuck: some sensor unchanged over (t - w, t] of the same asset and date, >= stuck_min_readings readings.

    `frame` is sorted by asset, then time."""
    if frame.height == 0:
        return pl.Series("is_stuck", [], pl.Boolean)
    index = WindowIndex(frame, profile.id_column, profile.time_column)
    seconds = stuck_window_seconds(profile)
    stuck = np.zeros(frame.height, dtype=bool)
    for s in profile.sensor_names:
        flat, count = flat_in_window(change_prefix(frame.get_column(s).to_numpy(), index), index, seconds, True)
        stuck |= flat & (count >= profile.quality.stuck_min_readings)
    return pl.Series("is_stuck", stuck)


def _deduplicate(ok: pl.DataFrame, aid: str, ts: str) -> tuple[pl.DataFrame, dict[date, int]]:
    """Keep the first row of each (asset, timestamp) by ingestion order; count the others per date."""
    dup = ok.select(pl.struct(aid, ts).is_duplicated()).to_series()
    if not dup.any():
        return ok, {}
    contested = ok.filter(dup).sort([aid, ts, *ORDER_KEYS])
    first = contested.select(pl.struct(aid, ts).is_first_distinct()).to_series()
    dropped = contested.filter(~first).group_by("date").len()
    return pl.concat([ok.filter(~dup), contested.filter(first)]), {d: int(n) for d, n in dropped.iter_rows()}


def validate(bronze: pl.DataFrame, metadata: pl.DataFrame, profile: Profile) -> SilverResult:
    """bronze rows (any dates) + fleet metadata -> silver, quarantine and duplicate counts per date."""
    aid, ts = profile.id_column, profile.time_column
    known_ids = metadata.get_column(aid).cast(pl.String)

    ok, rejected_pre = split_by_checks(bronze, pre_dedup_checks(profile, known_ids), parse_column="_parse_error")
    ok, duplicates = _deduplicate(ok, aid, ts)
    ok, rejected_values = split_by_checks(ok, value_checks(profile))
    keys = [aid, "date"]
    stats = [pl.col(s).mean().over(keys).alias(f"_mu_{s}") for s in profile.sensor_names]
    stats += [pl.col(s).std().over(keys).alias(f"_sd_{s}") for s in profile.sensor_names]
    ok, rejected_outliers = split_by_checks(ok.with_columns(stats), _outlier_checks(profile))

    q_schema = quarantine_schema(profile)
    rejected = [rejected_pre, rejected_values, rejected_outliers]
    quarantine = pl.concat([r.select(q_schema.names()) for r in rejected]).cast(dict(q_schema))
    quarantine = quarantine.sort(["date", "_source_file", "_source_row"], nulls_last=True)

    s_schema = silver_schema(profile)
    ok = sort_by_asset_time(ok.select([c for c in ok.columns if c in s_schema]), aid, ts)  # only what silver keeps
    ok = ok.with_columns(is_stuck=_stuck_flags(ok, profile))
    meta = metadata.with_columns(pl.col(aid).cast(pl.String))
    extra = [c for c in meta.columns if c not in ok.columns or c == aid]
    silver = ok.join(meta.select(extra), on=aid, how="left", maintain_order="left")
    silver = silver.select(s_schema.names()).cast(dict(s_schema))
    return SilverResult(silver, quarantine, duplicates)

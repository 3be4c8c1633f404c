"""`altaviz etl --engine spark`: bronze (delta-rs, shared with the Polars engine) -> silver + quarantine -> gold
with the Spark engine, writing Delta through Spark (`format("delta")`, `replaceWhere`, schema checked first).

Bronze ingestion and the PostgreSQL export are the Polars engine's (they are I/O, not stage logic); the stages
in between run on Spark. All target dates go through one Spark job per stage (Spark partitions the work itself);
gold reads the feature spec's lookback before the first date, so its windows see the previous day. Quality
metrics are aggregated on Spark and formatted exactly as `altaviz.lake.quality.quality_report` does.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from altaviz.lake.export_stage import run_export
from altaviz.lake.partitions import rows_per_date
from altaviz.lake.pipeline import EtlReport, after_silver, begin_run
from altaviz.lake.quality import ConservationError, write_metrics
from altaviz.lake.schema import (
    BRONZE,
    GOLD,
    QUARANTINE,
    SILVER,
    gold_schema,
    metadata_schema,
    quarantine_schema,
    silver_schema,
)
from altaviz.lake.spark_delta import write_dates
from altaviz.profiles.model import Profile
from altaviz.profiles.spec import REASONS, feature_spec
from altaviz.progress import NullProgress, Progress

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from altaviz.engines.spark_engine.silver import SparkSilverResult


def read_dates(spark: SparkSession, path: Path, dates: list[date]) -> DataFrame:
    from pyspark.sql import functions as F

    return spark.read.format("delta").load(str(path)).filter(F.col("date").isin(sorted(set(dates))))


def _date_counts(result: SparkSilverResult, profile: Profile) -> dict[date, dict[str, object]]:
    """Everything the metrics need, per date, in ONE aggregation over the classified bronze rows: rows, nulls per
    typed column, null-or-NaN per sensor, source files, silver rows, stuck rows, newest reading and load time of
    silver, duplicates dropped, quarantined rows per reason."""
    from pyspark.sql import functions as F

    from altaviz.engines.spark_engine.silver import DUP, REASON

    frame = result.classified
    sensors = profile.sensor_names
    typed = [c for c in (profile.id_column, profile.time_column, *sensors) if c in frame.columns]
    kept = F.col(REASON).isNull() & ~F.col(DUP)

    def count_if(cond):
        return F.sum(F.when(cond, F.lit(1)).otherwise(F.lit(0)).cast("long"))

    aggs = [F.count(F.lit(1)).alias("_rows")]
    aggs += [count_if(F.col(c).isNull()).alias(f"null:{c}") for c in typed]
    aggs += [count_if(F.col(s).isNull() | F.isnan(F.col(s))).alias(f"nan:{s}") for s in sensors]
    aggs += [F.collect_set("_source_file").alias("_files")]
    aggs += [
        count_if(kept).alias("_silver"),
        count_if(kept & F.col("is_stuck")).alias("_stuck"),
        F.max(F.when(kept, F.unix_micros(F.col(profile.time_column)))).alias("_newest"),
        F.max(F.when(kept, F.unix_micros(F.col("_ingested_at")))).alias("_loaded"),
        count_if(F.col(DUP)).alias("_duplicates"),
    ]
    aggs += [count_if(F.col(REASON) == F.lit(r)).alias(f"reason:{r}") for r in REASONS]
    aggs += [count_if(F.col(REASON).isNotNull() & ~F.col(REASON).isin(list(REASONS))).alias("_other_reasons")]
    return {r["date"]: r.asDict() for r in frame.groupBy("date").agg(*aggs).collect()}


def quality_reports(
    lake: Path, result: SparkSilverResult, dates: list[date], profile: Profile
) -> list[dict[str, object]]:
    """One report per date, the same dict `quality_report` builds from Polars frames (checked by conformance)."""
    from altaviz.lake.pipeline import _ledger_for

    sensors = profile.sensor_names
    counts = _date_counts(result, profile)
    typed = [profile.id_column, profile.time_column, *sensors]
    expected_cols = {profile.id_column, profile.time_column, *sensors}
    threshold = profile.quality.missing_rate_flag
    reports = []
    for d in dates:
        c = counts.get(d)
        if c is None:
            c = {"_rows": 0, "_files": [], "_silver": 0, "_duplicates": 0, "_other_reasons": 0}
        if c.get("_other_reasons"):
            raise ConservationError(f"date {d}: {c['_other_reasons']} quarantined rows with a reason outside {REASONS}")
        rows_in = int(c["_rows"])
        rows_out = int(c["_silver"])
        s = {"stuck": c.get("_stuck"), "newest": c.get("_newest"), "loaded": c.get("_loaded")}
        reasons = {r: int(c.get(f"reason:{r}") or 0) for r in REASONS}
        n_quarantined = sum(reasons.values())
        quarantined = {r: reasons[r] for r in REASONS if reasons.get(r, 0)}
        if rows_in:
            missing = {col: int(c[f"null:{col}"]) / rows_in for col in typed}
            missing.update({col: int(c[f"nan:{col}"]) / rows_in for col in sensors})
        else:
            missing = dict.fromkeys(typed, 0.0)
        freshness = (int(s["loaded"]) - int(s["newest"])) / 1e6 if rows_out else None
        mismatched: list[str] = []
        files = _ledger_for(
            lake, pl.DataFrame({"_source_file": sorted(c["_files"])}, schema={"_source_file": pl.String})
        )
        if files is not None and files.height and "columns" in files.columns:
            for path, cols in files.select("source_file", "columns").iter_rows():
                names = set(cols) if isinstance(cols, list) else {x for x in str(cols or "").split(",") if x}
                if names and names != expected_cols:
                    mismatched.append(path)
        dups = int(c["_duplicates"])
        balance = rows_out + n_quarantined + dups
        if balance != rows_in:
            raise ConservationError(
                f"date {d}: bronze has {rows_in} rows but silver {rows_out} + quarantine {n_quarantined} + "
                f"duplicates {dups} = {balance}"
            )
        reports.append(
            {
                "date": d.isoformat(),
                "profile": profile.name,
                "rows_in": rows_in,
                "rows_out": rows_out,
                "quarantined_total": n_quarantined,
                "quarantined": quarantined,
                "duplicates_dropped": dups,
                "stuck_rows": int(s["stuck"]) if rows_out else 0,
                "missing_rate": {col: round(float(r), 6) for col, r in missing.items()},
                "missing_flagged": sorted(col for col, r in missing.items() if r > threshold),
                "missing_rate_threshold": threshold,
                "freshness_lag_s": freshness,
                "schema_consistent": not mismatched,
                "schema_mismatched_files": sorted(mismatched),
                "conservation_ok": True,
            }
        )
    return reports


def run_silver_spark(
    spark: SparkSession, lake: Path, profile: Profile, dates: list[date], metadata: pl.DataFrame
) -> list[dict[str, object]]:
    """Rebuild silver + quarantine for `dates` on Spark; write the quality metrics; return them."""
    from altaviz.engines.spark_engine import validate
    from altaviz.engines.spark_engine.schema import to_spark

    lake = Path(lake)
    bronze = read_dates(spark, lake / BRONZE, dates)
    result = validate(bronze, to_spark(spark, metadata, metadata_schema(profile)), profile)
    # The classification (joins, windows) runs once: it is staged as Parquet, and the silver write, the quarantine
    # write and the metrics read the staged rows instead of recomputing it (cache() is not relied on).
    staging = lake / "_staging" / f"silver-{uuid.uuid4().hex}"
    try:
        result.classified.write.mode("overwrite").parquet(str(staging))
        result.classified = spark.read.parquet(str(staging))
        write_dates(result.silver, lake / SILVER, silver_schema(profile), dates)
        write_dates(result.quarantine, lake / QUARANTINE, quarantine_schema(profile), dates)
        reports = quality_reports(lake, result, dates, profile)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for r in reports:
        write_metrics(lake, r)
    return reports


def run_gold_spark(spark: SparkSession, lake: Path, profile: Profile, dates: list[date]) -> int:
    """Gold of `dates` from silver (+ the spec's lookback), one Spark job; returns the rows written."""
    from altaviz.engines.spark_engine import build_features

    lake = Path(lake)
    edge = datetime.combine(min(dates), datetime.min.time(), tzinfo=UTC) - feature_spec(profile).lookback
    span = [edge.date() + timedelta(days=i) for i in range((max(dates) - edge.date()).days + 1)]
    silver = read_dates(spark, lake / SILVER, span)  # whole days, as the Polars engine reads them
    staging = lake / "_staging" / f"gold-{uuid.uuid4().hex}"

    def stage(frame: DataFrame) -> DataFrame:  # computed once, read by every join of the gold plan
        frame.write.mode("overwrite").parquet(str(staging))
        return spark.read.parquet(str(staging))

    try:
        gold = build_features(silver, profile, dates, stage=stage)
        write_dates(gold, lake / GOLD, gold_schema(profile), dates)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    counts = rows_per_date(lake / GOLD)
    return sum(counts.get(d, 0) for d in dates)


def run_etl_spark(
    raw: Path | None,
    lake: Path,
    profile: Profile,
    *,
    dates: list[date] | None = None,
    skip_bronze: bool = False,
    skip_silver: bool = False,
    database_url: str | None = None,
    remote: str | None = None,
    progress: Progress | None = None,
) -> EtlReport:
    """The `run_etl` of the Spark engine (same report, same tables, same metrics)."""
    from altaviz.engines.spark_engine import get_session

    progress = progress or NullProgress()
    lake = Path(lake)
    report, metadata, target = begin_run(
        raw, lake, profile, database_url=database_url, dates=dates, skip_bronze=skip_bronze, progress=progress
    )
    spark = get_session(remote)
    report.lap("spark session")

    reports: dict[date, dict[str, object]] = {}
    if not skip_silver and target:
        with progress.step("silver + quarantine (spark)", total=1) as step:
            for r in run_silver_spark(spark, lake, profile, target, metadata):
                reports[date.fromisoformat(str(r["date"]))] = r
            step.advance()
        report.lap("silver")
    gold_dates = after_silver(report, reports, lake, target)
    if gold_dates:
        with progress.step("gold features (spark)", total=1) as step:
            report.gold_rows = run_gold_spark(spark, lake, profile, gold_dates)
            step.advance()
        report.lap("gold")
    if database_url and target:
        report.exported = run_export(database_url, lake, profile, target, metadata, reports, progress)
        report.lap("export")
    return report

"""`altaviz etl`: raw files -> bronze -> silver + quarantine -> gold -> PostgreSQL, by day partitions.

Dates are processed in chunks of consecutive days (bounded by row count, to bound memory; see `partitions`).
Silver and quarantine partitions of a date are replaced in one atomic commit each; gold of a date is computed
from silver with the feature spec's lookback (the previous day), so day-by-day processing equals one pass. When
silver of a date changes, gold of the next day (whose windows look back into it) is recomputed too. The export
(`export_stage`) starts on each silver chunk as soon as it is committed, on a background thread beside silver
and gold.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
from rich.table import Table

from altaviz.engines import get_engine
from altaviz.lake.delta_writer import write_delta
from altaviz.lake.export_stage import BackgroundExport, run_export
from altaviz.lake.partitions import _exists, _table, chunk_dates, read_dates, rows_per_date
from altaviz.lake.quality import quality_report, write_metrics
from altaviz.lake.reference import load_metadata
from altaviz.lake.schema import BRONZE, BRONZE_LEDGER, GOLD, QUARANTINE, SILVER
from altaviz.profiles.model import Profile
from altaviz.profiles.spec import feature_spec
from altaviz.progress import NullProgress, Progress


@dataclass
class EtlReport:
    dates: list[date] = field(default_factory=list)
    bronze_rows: int = 0
    files_ingested: int = 0
    files_skipped: int = 0
    silver_rows: int = 0
    gold_rows: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    duplicates_dropped: int = 0
    quality: list[dict[str, object]] = field(default_factory=list)
    exported: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    lake: Path | None = None
    database_url: str | None = None
    _clock: float = field(default_factory=time.perf_counter, repr=False, compare=False)

    def lap(self, stage: str) -> None:
        """Record the seconds since the report was made or since the previous lap under `stage`."""
        now = time.perf_counter()
        self.seconds[stage] = now - self._clock
        self._clock = now

    def summary_table(self) -> Table:
        t = Table(title=f"ETL of {len(self.dates)} date(s) into {self.lake}")
        t.add_column("what")
        t.add_column("value", justify="right")
        t.add_row("files ingested / skipped", f"{self.files_ingested} / {self.files_skipped}")
        t.add_row("bronze rows (this run)", f"{self.bronze_rows:,}")
        t.add_row("silver rows", f"{self.silver_rows:,}")
        t.add_row("duplicates dropped", f"{self.duplicates_dropped:,}")
        for reason, n in sorted(self.quarantined.items()):
            t.add_row(f"quarantined: {reason}", f"{n:,}")
        t.add_row("gold rows", f"{self.gold_rows:,}")
        for table, n in sorted(self.exported.items()):
            t.add_row(f"exported: {table}", f"{n:,}")
        for stage, s in self.seconds.items():
            t.add_row(f"time: {stage}", f"{s:.2f} s")
        return t


def _ledger_for(lake: Path, bronze_rows: pl.DataFrame) -> pl.DataFrame | None:
    """Ledger entries (one per ingested file) of the files these bronze rows came from."""
    ledger = _table(lake, BRONZE_LEDGER)
    if not _exists(ledger) or bronze_rows.height == 0:
        return None
    files = bronze_rows.get_column("_source_file").unique().implode()
    return pl.scan_delta(str(ledger)).filter(pl.col("source_file").is_in(files)).collect()


def _ledger_subset(ledger: pl.DataFrame | None, bronze_day: pl.DataFrame) -> pl.DataFrame | None:
    if ledger is None or bronze_day.height == 0:
        return None
    return ledger.filter(pl.col("source_file").is_in(bronze_day.get_column("_source_file").unique().implode()))


SilverChunkHook = Callable[[list[date], pl.DataFrame, dict[date, dict[str, object]]], None]


def run_silver(
    lake: Path,
    profile: Profile,
    dates: list[date],
    metadata: pl.DataFrame,
    engine: str,
    progress: Progress,
    on_chunk: SilverChunkHook | None = None,
) -> list[dict[str, object]]:
    """Rebuild silver + quarantine for `dates`; return one quality report per date.

    `on_chunk(dates, silver rows, reports by date)` is called after each chunk is committed (the export uses it
    to start on those dates while silver goes on)."""
    eng = get_engine(engine)
    bronze = _table(lake, BRONZE)
    counts = rows_per_date(bronze)
    reports = []
    with progress.step("silver + quarantine", total=len(dates)) as step:
        for chunk in chunk_dates(counts, dates, contiguous_only=False):
            rows = read_dates(bronze, chunk)
            result = eng.validate(rows, metadata, profile)
            for stage, rel, frame in (("silver", SILVER, result.silver), ("quarantine", QUARANTINE, result.quarantine)):
                write_delta(
                    _table(lake, rel),
                    frame,
                    mode="replace",
                    replace_partitions=chunk,
                    metadata={"altaviz.stage": stage, "altaviz.dates": [str(d) for d in chunk]},
                )
            by_date = lambda f, d: f.filter(pl.col("date") == d)  # noqa: E731
            ledger = _ledger_for(lake, rows)
            chunk_reports: dict[date, dict[str, object]] = {}
            for d in chunk:
                b = by_date(rows, d)
                report = quality_report(
                    d,
                    b,
                    by_date(result.silver, d),
                    by_date(result.quarantine, d),
                    result.duplicates_dropped.get(d, 0),
                    profile,
                    _ledger_subset(ledger, b),
                )
                write_metrics(lake, report)
                reports.append(report)
                chunk_reports[d] = report
                step.advance()
            if on_chunk is not None:
                on_chunk(chunk, result.silver, chunk_reports)
    return reports


def gold_dates_for(lake: Path, changed: list[date]) -> list[date]:
    """Dates whose gold depends on the changed silver dates: each date and the next one present in silver."""
    present = set(rows_per_date(_table(lake, SILVER)))
    out = set(changed) | {d + timedelta(days=1) for d in changed if d + timedelta(days=1) in present}
    return sorted(out)


def after_silver(
    report: EtlReport, reports: dict[date, dict[str, object]], lake: Path, target: list[date]
) -> list[date]:
    """Fold the silver quality reports into `report`, count the silver rows of the target dates, and return the
    dates whose gold must be (re)built. Shared by every engine's pipeline."""
    report.quality = list(reports.values())
    for r in reports.values():
        report.duplicates_dropped += int(r["duplicates_dropped"])  # type: ignore[arg-type]
        for reason, n in r["quarantined"].items():  # type: ignore[union-attr]
            report.quarantined[reason] = report.quarantined.get(reason, 0) + n
    silver_counts = rows_per_date(_table(lake, SILVER))
    report.silver_rows = sum(silver_counts.get(d, 0) for d in target)
    return [d for d in gold_dates_for(lake, target) if d in silver_counts] if target else []


def run_gold(lake: Path, profile: Profile, dates: list[date], engine: str, progress: Progress) -> int:
    eng = get_engine(engine)
    silver = _table(lake, SILVER)
    lookback = feature_spec(profile).lookback
    counts = rows_per_date(silver)
    total = 0
    # The Parquet encoding of chunk k (multi-threaded, releases the GIL) overlaps the features of chunk k + 1;
    # one writer thread keeps the commits in order and at most one finished chunk waits in memory.
    pending: Future[int] | None = None
    with progress.step("gold features", total=len(dates)) as step, ThreadPoolExecutor(1) as writer:
        for chunk in chunk_dates(counts, dates):
            edge = datetime.combine(chunk[0], datetime.min.time(), tzinfo=UTC) - lookback
            span = [edge.date() + timedelta(days=i) for i in range((chunk[-1] - edge.date()).days + 1)]
            # whole days: the per-day prefix sums of a lookback day must start at its first reading, as in one
            # pass (cut at `edge`, a reading at exactly midnight changed their rounding: 1 ulp seen on 4.5 M rows)
            rows = read_dates(silver, span)
            gold = eng.build_features(rows, profile, chunk)
            del rows
            if pending is not None:
                pending.result()
            pending = writer.submit(
                write_delta,
                _table(lake, GOLD),
                gold,
                mode="replace",
                replace_partitions=chunk,
                metadata={"altaviz.stage": "gold", "altaviz.dates": [str(d) for d in chunk]},
            )
            total += gold.height
            del gold
            step.advance(len(chunk))
        if pending is not None:
            pending.result()
    return total


def begin_run(
    raw: Path | None,
    lake: Path,
    profile: Profile,
    *,
    database_url: str | None,
    dates: list[date] | None,
    skip_bronze: bool,
    progress: Progress,
) -> tuple[EtlReport, pl.DataFrame, list[date]]:
    """The start every engine's pipeline shares: (report, fleet metadata, target dates).

    Bronze ingestion (unless skipped), then the dates the later stages work on: the given ones, else those the
    ingestion touched, else every bronze date. Fills the report's bronze part and its bronze lap."""
    report = EtlReport(lake=lake, database_url=database_url)
    metadata = load_metadata(raw, lake, profile)
    touched: list[date] = []
    if not skip_bronze:
        from altaviz.lake.bronze import ingest

        if raw is None:
            raise ValueError("raw directory required unless skip_bronze")
        result = ingest(raw, lake, profile, dates=dates, progress=progress)
        report.bronze_rows = result.rows
        report.files_ingested, report.files_skipped = result.files_ingested, result.files_skipped
        touched = sorted(result.rows_by_date)
    if dates is not None:
        target = sorted(set(dates))
    elif touched or not skip_bronze:
        target = touched
    else:
        target = sorted(rows_per_date(_table(lake, BRONZE)))
    report.dates = target
    if not skip_bronze:
        report.lap("bronze")
    return report, metadata, target


def run_etl(
    raw: Path | None,
    lake: Path,
    profile: Profile,
    *,
    dates: list[date] | None = None,
    skip_bronze: bool = False,
    skip_silver: bool = False,
    database_url: str | None = None,
    engine: str = "polars",
    progress: Progress | None = None,
) -> EtlReport:
    progress = progress or NullProgress()
    lake = Path(lake)
    report, metadata, target = begin_run(
        raw, lake, profile, database_url=database_url, dates=dates, skip_bronze=skip_bronze, progress=progress
    )
    reports: dict[date, dict[str, object]] = {}
    with ThreadPoolExecutor(1) as background, ExitStack() as stack:
        exporter = None
        if database_url and target and not skip_silver:
            step = stack.enter_context(progress.step("export to PostgreSQL", total=len(target)))
            exporter = BackgroundExport(background, database_url, profile, metadata, step)
        if not skip_silver and target:
            for r in run_silver(lake, profile, target, metadata, engine, progress, on_chunk=exporter):
                reports[date.fromisoformat(str(r["date"]))] = r
            report.lap("silver")
        gold_dates = after_silver(report, reports, lake, target)
        # Without a silver rebuild the export reads silver from the lake, beside gold.
        export = None
        if database_url and target and skip_silver:
            export = background.submit(run_export, database_url, lake, profile, target, metadata, reports, progress)
        if gold_dates:
            report.gold_rows = run_gold(lake, profile, gold_dates, engine, progress)
            report.lap("gold")
        if exporter is not None:
            report.exported = exporter.result()
            report.lap("export (after gold)")
        elif export is not None:
            report.exported = export.result()
            report.lap("export (after gold)")
    return report

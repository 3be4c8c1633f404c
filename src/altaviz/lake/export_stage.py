"""The export stage of `altaviz etl`: silver rows of each date -> hourly aggregates, alerts and quality rows in
PostgreSQL (`altaviz.serve.db.export` does the database side). Either from silver frames as the silver stage
commits them (`BackgroundExport`), or reading silver back from the lake (`run_export`)."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from pathlib import Path

import polars as pl

from altaviz.lake.partitions import _table, chunk_dates, read_dates, rows_per_date
from altaviz.lake.schema import SILVER
from altaviz.profiles.model import Profile
from altaviz.progress import Progress, Step
from altaviz.serve.publish import AGG_SCHEMA, ALERT_SCHEMA, hourly_aggregates, quality_rows, threshold_alerts


def export_days(
    database_url: str,
    profile: Profile,
    rows: pl.DataFrame,
    days: list[date],
    reports: dict[date, dict[str, object]],
    step: Step,
) -> dict[str, int]:
    """Hourly aggregates, alerts and quality rows of each date in `days` (from its silver `rows`) to PostgreSQL."""
    from altaviz.serve.db.export import connect, export_day

    exported: dict[str, int] = {}
    # aggregates and alerts of all the dates at once (hours never span dates), then split by date: per-call
    # overheads once rather than per date, which is most of the cost for small dates
    hour_date = pl.col("hour_start").dt.date()
    aggs = _by_date(hourly_aggregates(rows, profile), hour_date)
    alerts_by = _by_date(threshold_alerts(rows, profile), hour_date)
    with connect(database_url) as conn:  # one connection for the dates, one transaction per date
        for d in days:
            agg = aggs.get(d, _EMPTY_AGG)
            alerts = alerts_by.get(d, _EMPTY_ALERTS)
            quality = quality_rows(reports[d]) if d in reports else None
            export_day(database_url, d, agg, alerts, quality, conn=conn)
            exported["sensor_readings_agg"] = exported.get("sensor_readings_agg", 0) + agg.height
            exported["alert_history"] = exported.get("alert_history", 0) + alerts.height
            step.advance()
    return exported


_EMPTY_AGG = pl.DataFrame(schema=AGG_SCHEMA)
_EMPTY_ALERTS = pl.DataFrame(schema=ALERT_SCHEMA)


def _by_date(frame: pl.DataFrame, key: pl.Expr) -> dict[date, pl.DataFrame]:
    """Rows of `frame` per UTC date of `key`, in their order."""
    if frame.is_empty():
        return {}
    parts = frame.with_columns(key.alias("_date")).partition_by("_date", as_dict=True, maintain_order=True)
    return {k[0]: part.drop("_date") for k, part in parts.items()}


def _add_counts(total: dict[str, int], more: dict[str, int]) -> None:
    for table, n in more.items():
        total[table] = total.get(table, 0) + n


def run_export(
    database_url: str,
    lake: Path,
    profile: Profile,
    dates: list[date],
    metadata: pl.DataFrame,
    reports: dict[date, dict[str, object]],
    progress: Progress,
) -> dict[str, int]:
    """Export `dates` reading their silver rows from the lake (the path when silver is not rebuilt in this run)."""
    from altaviz.serve.db.export import export_compressors

    exported = {"compressors": export_compressors(database_url, metadata) or metadata.height}
    silver = _table(lake, SILVER)
    counts = rows_per_date(silver)
    with progress.step("export to PostgreSQL", total=len(dates)) as step:
        for chunk in chunk_dates(counts, dates):
            _add_counts(exported, export_days(database_url, profile, read_dates(silver, chunk), chunk, reports, step))
    return exported


class BackgroundExport:
    """Exports each silver chunk on a background thread as soon as it is committed, so the database work (its
    COPY runs in the server's process) overlaps silver and gold. At most `MAX_PENDING` chunks wait in memory."""

    MAX_PENDING = 2

    def __init__(
        self, pool: ThreadPoolExecutor, database_url: str, profile: Profile, metadata: pl.DataFrame, step: Step
    ) -> None:
        from altaviz.serve.db.export import export_compressors

        self._pool, self._url, self._profile, self._step = pool, database_url, profile, step
        self._futures: list[Future[dict[str, int]]] = [
            pool.submit(lambda: {"compressors": export_compressors(database_url, metadata) or metadata.height})
        ]

    def __call__(self, days: list[date], rows: pl.DataFrame, reports: dict[date, dict[str, object]]) -> None:
        for f in self._futures:  # a failed export stops the run now, not after gold
            if f.done() and f.exception() is not None:
                f.result()
        while sum(not f.done() for f in self._futures) >= self.MAX_PENDING:
            next(f for f in self._futures if not f.done()).result()
        self._futures.append(self._pool.submit(export_days, self._url, self._profile, rows, days, reports, self._step))

    def result(self) -> dict[str, int]:
        exported: dict[str, int] = {}
        for f in self._futures:
            _add_counts(exported, f.result())
        return exported

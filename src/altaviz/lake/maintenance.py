"""Table upkeep: compaction of small files and removal of files no version needs any more (delta-rs).

Why: the stream processor appends its accepted readings to bronze every few seconds (one small file per
partition and commit: ~17,000 a day per processor), and every ETL re-run of a date leaves the replaced silver
and gold files behind. Readers then open thousands of files, and the disk keeps every old version.

compact  rewrites the small files of each partition into files of about `target_mb` (default: delta-rs'
         256 MB) in one commit that changes no data (`dataChange = false`): readers of any version see the same
         rows, a table that only ever receives appends stays append-only, and time travel still works.
vacuum   deletes the files that no version within the retention period refers to (and files of writes that
         never committed), found by listing the table's directory: delta-rs' default ("lite") mode only sees
         removals still in the log, and a checkpoint (every few minutes on a bronze table the stream appends
         to) drops removals older than 7 days, so the files they replaced would stay forever. Versions older
         than the retention can then no longer be read (`--as-of-version`).
         A dry run by default; below 7 days of retention delta-rs asks for an explicit override, which `vacuum`
         gives only when told to (`allow_short_retention`), because a reader still on an old version, or a
         writer that has not committed yet, loses its files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from deltalake import CommitProperties
from deltalake.exceptions import CommitFailedError

from altaviz.lake.errors import LakeError
from altaviz.lake.tables import _open, _polars_schema, writer_properties

DEFAULT_RETENTION_HOURS = 168  # Delta's default (7 days)


@dataclass(frozen=True)
class CompactResult:
    table: str
    version_before: int
    version_after: int
    files_removed: int
    files_added: int
    partitions: int


def compact(
    lake: Path | str, table: str, dates: Iterable[date] | None = None, target_mb: int | None = None
) -> CompactResult:
    """Merge the small files of `table` (only the `date` partitions in `dates`, when given) in one commit."""
    if target_mb is not None and target_mb < 1:
        raise LakeError(f"compact {table}: expected a target file size of 1 MB or more, got {target_mb}")
    dt = _open(lake, table)
    before = dt.version()
    wanted = sorted(set(dates)) if dates is not None else None
    partitions = dt.metadata().partition_columns
    if wanted is not None and "date" not in partitions:
        raise LakeError(
            f"compact {table}: expected a table partitioned by date to compact some dates, got partition "
            f"columns {partitions}"
        )
    if wanted == []:
        return CompactResult(table, before, before, 0, 0, 0)
    filters = [("date", "in", [d.isoformat() for d in wanted])] if wanted else None
    try:
        metrics = dt.optimize.compact(
            partition_filters=filters,  # type: ignore[arg-type]
            target_size=target_mb * 1024 * 1024 if target_mb else None,
            writer_properties=writer_properties(_polars_schema(dt)),
            commit_properties=CommitProperties(custom_metadata={"altaviz.stage": "compact"}),
        )
    except CommitFailedError as exc:  # e.g. an ETL replaced the same partition meanwhile: nothing was changed
        raise LakeError(f"compact {table}: expected to commit, got a conflicting commit ({exc}); run it again") from exc
    return CompactResult(
        table=table,
        version_before=before,
        version_after=dt.version(),
        files_removed=int(metrics.get("numFilesRemoved", 0)),
        files_added=int(metrics.get("numFilesAdded", 0)),
        partitions=int(metrics.get("partitionsOptimized", 0)),
    )


def vacuum(
    lake: Path | str,
    table: str,
    retain_hours: int = DEFAULT_RETENTION_HOURS,
    *,
    dry_run: bool = True,
    allow_short_retention: bool = False,
) -> list[str]:
    """Files (relative to the table) that no version of the last `retain_hours` needs: listed, and deleted
    unless `dry_run`."""
    if retain_hours < 0:
        raise LakeError(f"vacuum {table}: expected a retention of 0 hours or more, got {retain_hours}")
    if retain_hours < DEFAULT_RETENTION_HOURS and not allow_short_retention:
        raise LakeError(
            f"vacuum {table}: a retention of {retain_hours} h is below {DEFAULT_RETENTION_HOURS} h; readers of "
            "older versions and writers still running would lose files (allow it explicitly to go on)"
        )
    return sorted(
        _open(lake, table).vacuum(
            retention_hours=retain_hours, dry_run=dry_run, enforce_retention_duration=False, full=True
        )
    )

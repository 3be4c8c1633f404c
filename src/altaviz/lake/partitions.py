"""Day partitions of the lake's Delta tables: which dates hold how many rows, reading some dates, and grouping
dates into chunks of bounded size (the unit every stage processes at a time)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path

import polars as pl
from deltalake import DeltaTable

MAX_CHUNK_ROWS = 1_000_000


def _table(lake: Path, rel: str) -> Path:
    return Path(lake) / rel


def _exists(path: Path) -> bool:
    return DeltaTable.is_deltatable(str(path))


def read_dates(path: Path, dates: Iterable[date], columns: list[str] | None = None) -> pl.DataFrame:
    """Rows of the given `date` partitions of a Delta table (partition pruning)."""
    wanted = sorted(set(dates))
    scan = pl.scan_delta(str(path)).filter(pl.col("date").is_in(wanted))
    if columns is not None:
        scan = scan.select(columns)
    return scan.collect()


def rows_per_date(path: Path) -> dict[date, int]:
    if not _exists(path):
        return {}
    counts = pl.scan_delta(str(path)).group_by("date").len().collect()
    return {d: int(n) for d, n in counts.iter_rows() if d is not None}


def chunk_dates(
    counts: dict[date, int], dates: Iterable[date], max_rows: int | None = None, *, contiguous_only: bool = True
) -> list[list[date]]:
    """Dates grouped so each group holds at most `max_rows` rows (default `MAX_CHUNK_ROWS`; one date may exceed it).

    `contiguous_only`: a gap between dates starts a new group (gold reads a lookback span from the group's first
    to its last date). Silver has no cross-date state, so it groups scattered dates (e.g. far-future ones) too.
    """
    max_rows = MAX_CHUNK_ROWS if max_rows is None else max_rows  # read at call time (tests lower it)
    chunks: list[list[date]] = []
    current: list[date] = []
    total = 0
    for d in sorted(set(dates)):
        n = counts.get(d, 0)
        contiguous = not contiguous_only or not current or d - current[-1] == timedelta(days=1)
        if current and (total + n > max_rows or not contiguous):
            chunks.append(current)
            current, total = [], 0
        current.append(d)
        total += n
    if current:
        chunks.append(current)
    return chunks

"""Data-quality metrics per date, and the row-conservation check run on every ETL.

Conservation: bronze rows of a date = silver rows + quarantined rows + duplicates dropped. A violation is a bug,
never a data problem, so it raises instead of writing tables that silently lost rows.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl

from altaviz.errors import AltavizError
from altaviz.profiles.model import Profile
from altaviz.profiles.spec import REASONS


class ConservationError(AltavizError):
    """Rows went missing (or appeared) between bronze and silver + quarantine + duplicates."""


def quality_report(
    day: date,
    bronze: pl.DataFrame,
    silver: pl.DataFrame,
    quarantine: pl.DataFrame,
    duplicates_dropped: int,
    profile: Profile,
    files: pl.DataFrame | None = None,
) -> dict[str, object]:
    """Metrics of one date. `bronze`, `silver`, `quarantine` hold only that date's rows.

    `files`: the bronze ledger rows of the files that fed this date (for schema consistency), if known.
    """
    rows_in, rows_out, n_quarantined = bronze.height, silver.height, quarantine.height
    by_reason = dict(quarantine.group_by("_reason").len().iter_rows()) if n_quarantined else {}
    quarantined = {r: int(by_reason.get(r, 0)) for r in REASONS if by_reason.get(r, 0)}
    quarantined.update({r: int(n) for r, n in by_reason.items() if r not in REASONS})

    sensors = profile.sensor_names
    typed = [c for c in (profile.id_column, profile.time_column, *sensors) if c in bronze.columns]
    if rows_in:
        missing = bronze.select([(pl.col(c).is_null().sum() / pl.len()).alias(c) for c in typed]).row(0, named=True)
        missing.update(
            bronze.select(
                [((pl.col(s).is_null() | pl.col(s).is_nan()).sum() / pl.len()).alias(s) for s in sensors]
            ).row(0, named=True)
        )
    else:
        missing = dict.fromkeys(typed, 0.0)
    threshold = profile.quality.missing_rate_flag
    missing_flagged = sorted(c for c, r in missing.items() if r > threshold)

    freshness = None
    if rows_out:
        newest = silver.get_column(profile.time_column).max()
        loaded = silver.get_column("_ingested_at").max()
        freshness = (loaded - newest).total_seconds()  # type: ignore[operator]

    expected_cols = {profile.id_column, profile.time_column, *sensors}
    mismatched: list[str] = []
    if files is not None and files.height and "columns" in files.columns:
        for path, cols in files.select("source_file", "columns").iter_rows():
            names = set(cols) if isinstance(cols, list) else {c for c in str(cols or "").split(",") if c}
            if names and names != expected_cols:
                mismatched.append(path)

    balance = rows_out + n_quarantined + duplicates_dropped
    report: dict[str, object] = {
        "date": day.isoformat(),
        "profile": profile.name,
        "rows_in": rows_in,
        "rows_out": rows_out,
        "quarantined_total": n_quarantined,
        "quarantined": quarantined,
        "duplicates_dropped": int(duplicates_dropped),
        "stuck_rows": int(silver.get_column("is_stuck").sum()) if rows_out else 0,
        "missing_rate": {c: round(float(r), 6) for c, r in missing.items()},
        "missing_flagged": missing_flagged,
        "missing_rate_threshold": threshold,
        "freshness_lag_s": freshness,
        "schema_consistent": not mismatched,
        "schema_mismatched_files": sorted(mismatched),
        "conservation_ok": balance == rows_in,
    }
    if balance != rows_in:
        raise ConservationError(
            f"date {day}: bronze has {rows_in} rows but silver {rows_out} + quarantine {n_quarantined} + "
            f"duplicates {duplicates_dropped} = {balance}"
        )
    return report


def write_metrics(lake: Path, report: dict[str, object]) -> Path:
    path = Path(lake) / "metrics" / f"quality_{report['date']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)
    return path

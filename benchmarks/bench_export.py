"""Benchmark: bulk export of hourly aggregates into PostgreSQL (binary COPY through altaviz.serve.db.export).

Generates a synthetic week of hourly aggregates (default 4,500 assets x 168 hours x 6 sensors = 4,536,000
rows), exports it day by day with `export_day` (one transaction per day: the day's partition rebuilt by COPY
and swapped in), three times, and prints one JSON line: rows, seconds_median (of the 3 runs), rows_per_s,
plus the individual runs.

Each run starts from empty tables (TRUNCATE + CHECKPOINT, untimed), so it measures a first export;
`reexport_seconds` is one more export over the rows already there, the idempotent re-run case. Frame
generation and the per-day split happen before the clock starts; validation and encoding are timed.

Database: ALTAVIZ_DATABASE_URL when set, else a throwaway embedded server in a temporary directory.

    .venv/bin/python benchmarks/bench_export.py [--assets 4500] [--hours 168] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import psycopg

from altaviz.serve.db.export import export_day
from altaviz.serve.db.server import start_embedded, stop_embedded
from altaviz.settings import Settings

SENSORS = [
    "vibration_mms",
    "discharge_temp_f",
    "suction_pressure_psi",
    "discharge_pressure_psi",
    "horsepower",
    "gas_flow_mcfd",
]


def synthetic_aggregates(assets: int, hours: int, start: datetime, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    ids = pl.Series("compressor_id", [f"COMP-{i:04d}" for i in range(1, assets + 1)])
    grid = (
        pl.DataFrame({"compressor_id": ids})
        .join(pl.DataFrame({"sensor": SENSORS}), how="cross")
        .join(
            pl.DataFrame(
                {"hour_start": pl.datetime_range(start, start + timedelta(hours=hours - 1), "1h", eager=True)}
            ),
            how="cross",
        )
    )
    n = grid.height
    mean = rng.normal(100.0, 10.0, n)
    spread = rng.uniform(0.5, 5.0, n)
    return grid.with_columns(
        pl.col("hour_start").dt.replace_time_zone("UTC"),
        mean=pl.Series(mean),
        min=pl.Series(mean - spread),
        max=pl.Series(mean + spread),
        count=pl.Series(rng.integers(1, 61, n), dtype=pl.Int32),
    ).sort("compressor_id", "sensor", "hour_start")


def export_week(url: str, frame: pl.DataFrame, days: list[date]) -> float:
    by_day = {d: frame.filter(pl.col("hour_start").dt.date() == d) for d in days}
    t0 = time.perf_counter()
    for d in days:
        export_day(url, d, by_day[d], None, None)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=4500)
    ap.add_argument("--hours", type=int, default=168)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    start = datetime(2026, 1, 5, tzinfo=UTC)
    frame = synthetic_aggregates(args.assets, args.hours, start)
    days = sorted(set(frame.get_column("hour_start").dt.date().to_list()))

    tmp = None
    url = os.environ.get("ALTAVIZ_DATABASE_URL")
    if not url:
        tmp = Path(tempfile.mkdtemp(prefix="altaviz-bench-"))
        tmp.chmod(0o755)  # the server may run as an unprivileged account (see altaviz.serve.db._posix)
        settings = Settings(data_root=tmp, database_url=None)
        url = start_embedded(settings)
    try:
        runs = []
        for _ in range(args.runs):
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("TRUNCATE sensor_readings_agg")
                conn.execute("CHECKPOINT")
            runs.append(export_week(url, frame, days))
        reexport = export_week(url, frame, days)
        with psycopg.connect(url) as conn:
            stored = conn.execute("SELECT count(*) FROM sensor_readings_agg").fetchone()[0]  # type: ignore[index]
        assert stored == frame.height, (stored, frame.height)
    finally:
        if tmp is not None:
            stop_embedded(Settings(data_root=tmp, database_url=None))
            shutil.rmtree(tmp, ignore_errors=True)
    median = statistics.median(runs)
    print(
        json.dumps(
            {
                "benchmark": "export_day sensor_readings_agg (binary COPY)",
                "rows": frame.height,
                "seconds_median": round(median, 3),
                "rows_per_s": round(frame.height / median),
                "runs_s": [round(r, 3) for r in runs],
                "reexport_seconds": round(reexport, 3),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()

"""Bronze ingestion benchmark: raw files -> bronze Delta table, wall time and peak RSS.

    python benchmarks/bench_bronze.py                      # 4.5 M synthetic readings as daily Parquet files
    python benchmarks/bench_bronze.py --format jsonl       # the same readings as one JSONL file per asset-day
    python benchmarks/bench_bronze.py --data DIR           # any raw directory (e.g. from `altaviz simulate`)

Each repeat ingests into a fresh lake in a fresh process (so peak RSS is the ingestion's own: ru_maxrss of the
child, which includes the interpreter and imports). `cpu_seconds_median` (user + sys of the child, imports
included) is steadier than wall time on a shared machine. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

SENSORS = {
    "vibration_mms": (3.0, 0.8),
    "discharge_temp_f": (220.0, 10.0),
    "suction_pressure_psi": (80.0, 6.0),
    "discharge_pressure_psi": (1000.0, 40.0),
    "horsepower": (1200.0, 60.0),
    "gas_flow_mcfd": (9000.0, 700.0),
}
CHILD = """
import json, resource, sys, time
from pathlib import Path
from altaviz.lake.bronze import ingest
from altaviz.profiles import load_profile
profile = load_profile()
t = time.perf_counter()
r = ingest(Path(sys.argv[1]), Path(sys.argv[2]), profile)
wall = time.perf_counter() - t
use = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": wall, "rows": r.rows, "files": r.files_ingested, "parse_errors": r.parse_errors,
                  "rss_mb": use.ru_maxrss / 1024, "cpu": use.ru_utime + use.ru_stime}))
"""


def synthesize(out: Path, rows: int, fmt: str, seed: int = 7) -> None:
    """Readings every 10 minutes, 144 per asset-day, values rounded to 2 decimals like a historian export."""
    per_day = 144
    days = 25
    assets = max(1, round(rows / (per_day * days)))
    rng = np.random.default_rng(seed)
    ids = [f"COMP-{i:04d}" for i in range(1, assets + 1)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for d in range(days):
        day = start + timedelta(days=d)
        times = pl.datetime_range(day, day + timedelta(minutes=10 * (per_day - 1)), "10m", eager=True, time_zone="UTC")
        frame = pl.DataFrame({"compressor_id": np.repeat(ids, per_day), "timestamp": pl.concat([times] * assets)})
        frame = frame.with_columns(
            pl.Series(s, np.round(rng.normal(m, sd, frame.height), 2)) for s, (m, sd) in SENSORS.items()
        )
        if fmt == "jsonl":
            text = frame.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
            for (asset,), part in text.group_by("compressor_id", maintain_order=True):
                folder = out / "raw" / f"{day:%Y/%m/%d}" / f"ST-{int(str(asset)[5:]) % 50:02d}"
                folder.mkdir(parents=True, exist_ok=True)
                part.write_ndjson(folder / f"{asset}.jsonl")
            continue
        folder = out / "raw" / f"date={day:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        if fmt == "csv":
            frame.write_csv(folder / "part-0.csv", datetime_format="%Y-%m-%dT%H:%M:%SZ")
        else:
            frame.write_parquet(folder / "part-0.parquet")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="raw directory (default: synthesize one)")
    ap.add_argument("--rows", type=int, default=4_500_000, help="synthetic readings (default 4.5 M)")
    ap.add_argument("--format", choices=["parquet", "csv", "jsonl"], default="parquet")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, help="where to keep data and lakes (default: a temp dir)")
    args = ap.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="altaviz-bench-bronze-"))
    work.mkdir(parents=True, exist_ok=True)
    raw = args.data
    if raw is None:
        raw = work / f"raw-{args.rows}-{args.format}"
        if not raw.exists():
            synthesize(raw, args.rows, args.format)
    runs = []
    for i in range(args.repeat):
        lake = work / f"lake-{i}"
        shutil.rmtree(lake, ignore_errors=True)
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(raw), str(lake)], check=True, capture_output=True, text=True
        )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        shutil.rmtree(lake, ignore_errors=True)
    seconds = [r["seconds"] for r in runs]
    print(
        json.dumps(
            {
                "benchmark": "bronze",
                "raw": str(raw),
                "format": args.format if args.data is None else "as found",
                "rows": runs[0]["rows"],
                "files": runs[0]["files"],
                "parse_errors": runs[0]["parse_errors"],
                "seconds_median": round(statistics.median(seconds), 2),
                "seconds_all": [round(s, 2) for s in seconds],
                "peak_rss_mb": round(max(r["rss_mb"] for r in runs)),
                "cpu_seconds_median": round(statistics.median(r["cpu"] for r in runs), 2),
                "rows_per_s": round(runs[0]["rows"] / statistics.median(seconds)),
            }
        )
    )
    if args.workdir is None and args.data is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark the fleet simulator end to end (simulate + write files).

    .venv/bin/python benchmarks/bench_simulate.py --assets 4500 --days 7 --interval 10m --format parquet

Prints one JSON line: rows, seconds_median, seconds_all, rows_per_s, peak_rss_mb.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from altaviz.profiles import load_profile, parse_duration
from altaviz.simulate import run_simulation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=4500)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--interval", default="10m")
    parser.add_argument("--format", default="parquet", choices=["parquet", "csv", "jsonl"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    profile = load_profile("compressor")
    interval = parse_duration(args.interval)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    seconds, rows = [], 0
    with tempfile.TemporaryDirectory(prefix="altaviz-bench-") as tmp:
        for i in range(args.repeat):
            out = Path(tmp) / f"run{i}"
            began = time.perf_counter()
            report = run_simulation(
                profile,
                out,
                assets=args.assets,
                days=args.days,
                interval=interval,
                seed=args.seed,
                fmt=args.format,
                start=start,
            )
            seconds.append(round(time.perf_counter() - began, 3))
            rows = report.rows
    median = statistics.median(seconds)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds_median": median,
                "seconds_all": seconds,
                "rows_per_s": round(rows / median) if median else None,
                "peak_rss_mb": round(peak_kb / 1024, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Spark engine vs Polars engine: silver + gold of the same bronze, in the same run. Prints one JSON line.

    python benchmarks/bench_spark.py --data /tmp/bench/raw45           # the 4.5 M-row workload
    python benchmarks/bench_spark.py --data RAW --spark-remote sc://HOST:PORT

Bronze is ingested once (delta-rs, not timed in the comparison) and copied, so both engines read identical bronze.
Timed: Polars engine `run_etl(skip_bronze)` (silver + quarantine + gold + metrics) and Spark engine
`run_etl_spark(skip_bronze)` on the embedded Sail server (or --spark-remote); the Spark session start is timed
apart. Then silver and gold are compared date by date (Float64 within 1e-9 relative; the Float32 gold features
exactly). The 1-minute load average at the start and the end of the timed part is reported too (the machine may
be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import polars as pl

from altaviz.lake.schema import GOLD, SILVER
from altaviz.profiles import load_profile


def _differences(a: pl.DataFrame, b: pl.DataFrame, keys: list[str], tolerances: dict[str, float]) -> list[str]:
    if a.schema != b.schema or a.height != b.height:
        return [f"shape/schema {a.shape} vs {b.shape}"]
    a, b = a.sort(keys), b.sort(keys)
    out = []
    for name, dtype in a.schema.items():
        x, y = a.get_column(name), b.get_column(name)
        if dtype == pl.Float64:
            tol = tolerances.get(name, 1e-9)
            f = pl.DataFrame({"x": x, "y": y})
            same = f.select(
                (
                    (pl.col("x").is_null() & pl.col("y").is_null())
                    | (pl.col("x") == pl.col("y"))
                    | (
                        (pl.col("x") - pl.col("y")).abs()
                        <= tol * pl.max_horizontal(pl.col("x").abs(), pl.col("y").abs())
                    )
                ).fill_null(False)
            ).to_series()
            if not same.all():
                out.append(f"{name}: {int((~same).sum())} rows")
        elif not x.equals(y):
            out.append(f"{name}: differs")
    return out


def common_fields(bronze_rows: int, p_report, polars_s: float, spark_s: float, session_s: float) -> dict:
    """The fields every engine comparison prints (this script and bench_spark_jvm.py)."""
    return {
        "bronze_rows": bronze_rows,
        "silver_rows": p_report.silver_rows,
        "gold_rows": p_report.gold_rows,
        "polars_s": round(polars_s, 2),
        "spark_s": round(spark_s, 2),
        "spark_session_start_s": round(session_s, 2),
        "ratio": round(spark_s / polars_s, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="raw directory (simulator layout)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--spark-remote", default=None)
    args = ap.parse_args()

    from altaviz.engines.spark_engine import get_session
    from altaviz.lake.bronze import ingest
    from altaviz.lake.pipeline import read_dates, rows_per_date, run_etl
    from altaviz.lake.reference import load_metadata
    from altaviz.lake.schema import BRONZE
    from altaviz.lake.spark_pipeline import run_etl_spark

    profile = load_profile("compressor")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="altaviz-bench-spark-"))
    base = work / "base"
    shutil.rmtree(work / "polars", ignore_errors=True)
    shutil.rmtree(work / "spark", ignore_errors=True)
    if not (base / BRONZE).exists():
        ingest(args.data, base, profile)
        load_metadata(args.data, base, profile)
    polars_lake, spark_lake = work / "polars", work / "spark"
    shutil.copytree(base, polars_lake)
    shutil.copytree(base, spark_lake)
    bronze_rows = sum(rows_per_date(base / BRONZE).values())

    load_start = os.getloadavg()[0]
    t0 = time.perf_counter()
    p_report = run_etl(None, polars_lake, profile, skip_bronze=True)
    polars_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    get_session(args.spark_remote)
    session_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    s_report = run_etl_spark(None, spark_lake, profile, skip_bronze=True, remote=args.spark_remote)
    spark_s = time.perf_counter() - t0
    load_end = os.getloadavg()[0]

    tolerances: dict[str, float] = {}
    keys = [profile.id_column, profile.time_column]
    differences: dict[str, list[str]] = {}
    for table in (SILVER, GOLD):
        for d in sorted(rows_per_date(polars_lake / table)):
            diff = _differences(
                read_dates(polars_lake / table, [d]), read_dates(spark_lake / table, [d]), keys, tolerances
            )
            if diff:
                differences[f"{table} {d}"] = diff
    metrics_equal = all(
        json.loads(p.read_text()) == json.loads((spark_lake / "metrics" / p.name).read_text())
        for p in (polars_lake / "metrics").glob("quality_*.json")
    )
    print(
        json.dumps(
            {
                "benchmark": "spark_vs_polars_silver_gold",
                **common_fields(bronze_rows, p_report, polars_s, spark_s, session_s),
                "spark_stages_s": {k: round(v, 2) for k, v in s_report.seconds.items()},
                "polars_stages_s": {k: round(v, 2) for k, v in p_report.seconds.items()},
                "identical": not differences and metrics_equal,
                "metrics_identical": metrics_equal,
                "differences": differences,
                "spark": args.spark_remote or "embedded Sail",
                "load_average_1m": [round(load_start, 2), round(load_end, 2)],  # at the start and end of the timing
            }
        )
    )


if __name__ == "__main__":
    main()

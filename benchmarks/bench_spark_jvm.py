"""Spark engine on JVM PySpark local vs the Polars engine: silver + gold of the same bronze. Prints one JSON line.

    python benchmarks/bench_spark_jvm.py --data /tmp/bench/raw45           # the 4.5 M-row workload

JVM Spark has no Delta here (its jars come from Maven, out of reach), so this runs the Spark engine's stage
functions on Parquet instead of through `altaviz etl --engine spark`: bronze is ingested once (delta-rs) and copied
out as Parquet. Timed on the JVM: read bronze (explicit schema) -> `validate` -> classified rows staged as Parquet
-> silver and quarantine written as Parquet (silver) -> `build_features` over that silver (prepared rows staged,
as the Delta pipeline does) -> gold written as Parquet. The Polars engine's `run_etl(skip_bronze)` over the same
bronze is timed in the same run (it also writes its quality metrics). Then silver and gold are compared with the
Polars engine's tables date by date (Float64 within 1e-9 relative; the Float32 gold features exactly).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_spark import _differences, common_fields  # noqa: E402

from altaviz.lake.schema import GOLD, SILVER  # noqa: E402
from altaviz.profiles import load_profile  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="raw directory (simulator layout)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    from altaviz.engines.spark_engine import build_features, get_session, validate
    from altaviz.engines.spark_engine.schema import spark_schema, to_spark
    from altaviz.lake.bronze import ingest
    from altaviz.lake.pipeline import read_dates, rows_per_date, run_etl
    from altaviz.lake.reference import load_metadata
    from altaviz.lake.schema import BRONZE, bronze_schema, gold_schema, metadata_schema, silver_schema

    profile = load_profile("compressor")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="altaviz-bench-jvm-"))
    base, polars_lake, out = work / "base", work / "polars", work / "jvm"
    shutil.rmtree(polars_lake, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    if not (base / BRONZE).exists():
        ingest(args.data, base, profile)
    metadata = load_metadata(args.data, base, profile)
    shutil.copytree(base, polars_lake)
    counts = rows_per_date(base / BRONZE)
    dates = sorted(counts)
    bronze_pq = work / "bronze_parquet"
    if not bronze_pq.exists():
        bronze_pq.mkdir(parents=True)
        for d in dates:  # one file per date: the JVM reads them in parallel
            read_dates(base / BRONZE, [d]).write_parquet(bronze_pq / f"{d}.parquet")
    bronze_rows = sum(counts.values())

    t0 = time.perf_counter()
    p_report = run_etl(None, polars_lake, profile, skip_bronze=True)
    polars_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    spark = get_session(kind="jvm")
    session_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    bronze = spark.read.schema(spark_schema(bronze_schema(profile))).parquet(str(bronze_pq))
    result = validate(bronze, to_spark(spark, metadata, metadata_schema(profile)), profile)
    result.classified.write.mode("overwrite").parquet(str(out / "classified"))
    result.classified = spark.read.parquet(str(out / "classified"))
    result.silver.write.mode("overwrite").parquet(str(out / "silver"))
    result.quarantine.write.mode("overwrite").parquet(str(out / "quarantine"))
    silver_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    silver = spark.read.schema(spark_schema(silver_schema(profile))).parquet(str(out / "silver"))

    def stage(frame):
        frame.write.mode("overwrite").parquet(str(out / "prepared"))
        return spark.read.parquet(str(out / "prepared"))

    build_features(silver, profile, dates, stage=stage).write.mode("overwrite").parquet(str(out / "gold"))
    gold_s = time.perf_counter() - t0
    spark.stop()

    keys = [profile.id_column, profile.time_column]
    differences: dict[str, list[str]] = {}
    for table, schema in ((SILVER, silver_schema(profile)), (GOLD, gold_schema(profile))):
        name = table.split("/")[0]
        theirs = pl.read_parquet(out / name / "*.parquet").select(list(schema)).cast(dict(schema))
        for d in sorted(rows_per_date(polars_lake / table)):
            ours = read_dates(polars_lake / table, [d])
            diff = _differences(ours, theirs.filter(pl.col("date") == d).select(ours.columns), keys, {})
            if diff:
                differences[f"{table} {d}"] = diff
    spark_s = silver_s + gold_s
    print(
        json.dumps(
            {
                "benchmark": "spark_jvm_vs_polars_silver_gold",
                **common_fields(bronze_rows, p_report, polars_s, spark_s, session_s),
                "spark_stages_s": {"silver": round(silver_s, 2), "gold": round(gold_s, 2)},
                "polars_stages_s": {k: round(v, 2) for k, v in p_report.seconds.items()},
                "identical": not differences,
                "differences": differences,
                "spark": "JVM PySpark local[*] (Parquet, no Delta)",
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()

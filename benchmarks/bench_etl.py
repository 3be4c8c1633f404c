"""ETL benchmark: raw Parquet -> bronze -> silver -> gold -> PostgreSQL export, wall time and peak RSS.

    python benchmarks/bench_etl.py --assets 4500 --days 7            # 4.5 M readings (simulated once, reused)
    python benchmarks/bench_etl.py --data DIR                          # any raw directory in the simulator layout
    python benchmarks/bench_etl.py --assets 10 --days 7 --skip-export  # 10,080 readings, lake only

Each repeat runs `altaviz etl` in a fresh process on a fresh lake (fresh database tables), so peak RSS is the ETL
process's own. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALTAVIZ = [sys.executable, "-m", "altaviz.cli"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="raw directory (default: simulate one)")
    ap.add_argument("--assets", type=int, default=4500)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--interval", default="10m")
    ap.add_argument("--format", default="parquet")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-export", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None, help="where to keep data (default: a temp dir)")
    args = ap.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="altaviz-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)
    raw = args.data
    if raw is None:
        raw = work / f"raw-{args.assets}x{args.days}-{args.interval}-{args.format}"
        if not (raw / "reference").exists():
            subprocess.run(
                [
                    *ALTAVIZ,
                    "simulate",
                    "--assets",
                    str(args.assets),
                    "--days",
                    str(args.days),
                    "--interval",
                    args.interval,
                    "--format",
                    args.format,
                    "--out",
                    str(raw),
                    "--seed",
                    "42",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
    env = dict(os.environ, ALTAVIZ_DATA_ROOT=str(work / "data"))
    url = None
    if not args.skip_export:
        url = subprocess.run(
            [*ALTAVIZ, "db", "url"], env=env, check=True, capture_output=True, text=True
        ).stdout.strip()
        env["ALTAVIZ_DATABASE_URL"] = url
    walls, rss, rows = [], [], None
    for i in range(args.repeat):
        lake = work / f"lake-{i}"
        shutil.rmtree(lake, ignore_errors=True)
        if url:
            _truncate(url)
        cmd = [*ALTAVIZ, "etl", "--raw", str(raw), "--lake", str(lake)]
        if args.skip_export:
            cmd.append("--skip-export")
        wall, peak = run_measured(cmd, env)
        walls.append(wall)
        rss.append(peak)
        if rows is None:
            import polars as pl

            rows = pl.scan_delta(str(lake / "bronze" / "sensor_readings")).select(pl.len()).collect().item()
        shutil.rmtree(lake, ignore_errors=True)
    print(
        json.dumps(
            {
                "benchmark": "etl",
                "raw": str(raw),
                "bronze_rows": rows,
                "export": not args.skip_export,
                "seconds_median": round(statistics.median(walls), 2),
                "seconds_all": [round(w, 2) for w in walls],
                "peak_rss_mb": round(max(rss)),
                "rows_per_s": round(rows / statistics.median(walls)) if rows else None,
            }
        )
    )
    if url:  # the embedded server this benchmark started (also when --data was given)
        subprocess.run([*ALTAVIZ, "db", "stop"], env=env, check=False, capture_output=True)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB, sampled every 20 ms) of a command."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, peak / 2**20


def _truncate(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE sensor_readings_agg, alert_history, data_quality_metrics, compressors")


if __name__ == "__main__":
    main()

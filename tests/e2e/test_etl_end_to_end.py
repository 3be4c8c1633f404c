"""End to end: simulated fleet with every fault kind -> bronze -> silver/quarantine -> gold -> real PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import psycopg
import pytest
from deltalake import DeltaTable

from altaviz.lake import partitions
from altaviz.lake.pipeline import run_etl
from altaviz.profiles import load_profile
from altaviz.simulate import FaultRates, run_simulation

P = load_profile("compressor")
START = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    run_simulation(
        P,
        out,
        assets=6,
        days=3,
        interval=timedelta(minutes=10),
        seed=7,
        fmt="jsonl",
        start=START,
        faults=FaultRates(),
    )
    return out


def table(lake: Path, rel: str, version: int | None = None) -> pl.DataFrame:
    return pl.read_delta(str(lake / rel), version=version)


def keyed(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    return frame.select(sorted(frame.columns)).sort(keys)


def test_every_row_is_accounted_for_and_exported(raw, tmp_path, clean_postgres_url):
    lake = tmp_path / "lake"
    report = run_etl(raw, lake, P, database_url=clean_postgres_url)
    bronze = table(lake, "bronze/sensor_readings")
    silver = table(lake, "silver/sensor_readings")
    quarantine = table(lake, "quarantine/sensor_readings")
    gold = table(lake, "gold/sensor_features")

    assert report.bronze_rows == bronze.height > 2500
    assert bronze.height == silver.height + quarantine.height + report.duplicates_dropped
    assert report.duplicates_dropped > 0
    reasons = set(quarantine["_reason"].unique())
    assert {"malformed_record", "unknown_asset", "future_timestamp", "null_value"} <= reasons
    assert reasons & {"out_of_physical_range", "outlier"}
    assert gold.height == silver.height
    assert silver.select(pl.struct("compressor_id", "timestamp").is_unique().all()).item()

    for q in report.quality:
        path = lake / "metrics" / f"quality_{q['date']}.json"
        on_disk = json.loads(path.read_text())
        assert on_disk["conservation_ok"] is True
        assert on_disk["rows_in"] == on_disk["rows_out"] + on_disk["quarantined_total"] + on_disk["duplicates_dropped"]
        assert "duplicates_dropped" in on_disk and "missing_rate" in on_disk

    with psycopg.connect(clean_postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM compressors").fetchone()[0] == 6
        agg = conn.execute("SELECT count(*), sum(count) FROM sensor_readings_agg").fetchone()
        assert agg[1] == silver.height * len(P.sensor_names)
        metrics = conn.execute("SELECT count(DISTINCT date) FROM data_quality_metrics").fetchone()[0]
        assert metrics == len(report.quality)
        alerts = conn.execute("SELECT count(*) FROM alert_history").fetchone()[0]
    assert alerts > 0  # the simulated failures cross the warning thresholds


def test_rerun_is_idempotent(raw, tmp_path, clean_postgres_url):
    lake = tmp_path / "lake"
    run_etl(raw, lake, P, database_url=clean_postgres_url)
    first = {
        t: table(lake, t)
        for t in (
            "bronze/sensor_readings",
            "silver/sensor_readings",
            "quarantine/sensor_readings",
            "gold/sensor_features",
        )
    }
    with psycopg.connect(clean_postgres_url) as conn:
        counts = [
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("sensor_readings_agg", "alert_history", "data_quality_metrics", "compressors")
        ]
    again = run_etl(raw, lake, P, database_url=clean_postgres_url)
    assert again.bronze_rows == 0 and again.files_skipped > 0 and again.files_ingested == 0
    # nothing new was ingested: re-run the silver/gold/export of every date explicitly
    dates = sorted(first["silver/sensor_readings"]["date"].unique())
    run_etl(raw, lake, P, dates=dates, skip_bronze=True, database_url=clean_postgres_url)
    keys = ["_source_file", "_source_row"]
    for t, before in first.items():
        k = keys if t.startswith(("bronze", "quarantine")) else ["compressor_id", "timestamp"]
        assert keyed(table(lake, t), k).equals(keyed(before, k)), t
    with psycopg.connect(clean_postgres_url) as conn:
        assert counts == [
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("sensor_readings_agg", "alert_history", "data_quality_metrics", "compressors")
        ]


def test_day_by_day_gold_equals_one_pass(raw, tmp_path, monkeypatch):
    one_pass = tmp_path / "one"
    run_etl(raw, one_pass, P)
    monkeypatch.setattr(partitions, "MAX_CHUNK_ROWS", 1)  # every date its own chunk
    by_day = tmp_path / "by_day"
    run_etl(raw, by_day, P)
    commits = [len(DeltaTable(str(lake / "gold" / "sensor_features")).history()) for lake in (one_pass, by_day)]
    assert commits[1] > commits[0] > 0, f"gold commits one pass vs by day: {commits}"
    keys = ["compressor_id", "timestamp"]
    a, b = table(one_pass, "gold/sensor_features"), table(by_day, "gold/sensor_features")
    assert a.height > 0 and keyed(a, keys).equals(keyed(b, keys))


def test_killed_during_gold_write_keeps_previous_version_and_rerun_completes(raw, tmp_path):
    lake = tmp_path / "lake"
    run_etl(raw, lake, P)
    gold_path = lake / "gold" / "sensor_features"
    version = DeltaTable(str(gold_path)).version()
    before = keyed(table(lake, "gold/sensor_features"), ["compressor_id", "timestamp"])
    marker = tmp_path / "gold-files-written"
    child = textwrap.dedent(
        f"""
        import pathlib, time
        from deltalake import DeltaTable
        from altaviz.lake.pipeline import run_etl
        from altaviz.profiles import load_profile

        real = DeltaTable.create_write_transaction
        def commit(self, *a, **k):
            if "gold" in self.table_uri:
                pathlib.Path({str(marker)!r}).write_text("files written, commit pending")
                time.sleep(600)
            return real(self, *a, **k)
        DeltaTable.create_write_transaction = commit
        run_etl(None, pathlib.Path({str(lake)!r}), load_profile("compressor"), skip_bronze=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child])
    deadline = time.time() + 120
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the child never reached the gold commit"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert DeltaTable(str(gold_path)).version() == version
    assert keyed(table(lake, "gold/sensor_features"), ["compressor_id", "timestamp"]).equals(before)
    run_etl(None, lake, P, skip_bronze=True)
    assert DeltaTable(str(gold_path)).version() > version
    assert keyed(table(lake, "gold/sensor_features"), ["compressor_id", "timestamp"]).equals(before)


def test_unreachable_database_stops_the_run_with_a_clear_error(raw, tmp_path):
    import socket

    from altaviz.serve.db.export import ExportError

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://altaviz@127.0.0.1:{port}/altaviz"
    with pytest.raises(ExportError, match=r"expected a reachable PostgreSQL server"):
        run_etl(raw, tmp_path / "lake", P, database_url=url)

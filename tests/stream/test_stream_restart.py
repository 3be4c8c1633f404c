"""Fault test: SIGKILL the processor mid-stream and restart it; compare with an uninterrupted run.

0 readings lost, 0 duplicated, the same dead letters, and window rows identical to those of an uninterrupted
processor that read the same topic into a second database."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest
from psycopg import sql

REF_DB = "altaviz_stream_reference"


def _spawn(stream, url: str, root, log):
    env = {**os.environ, "ALTAVIZ_KAFKA_BOOTSTRAP": stream.bootstrap, "ALTAVIZ_DATABASE_URL": url}
    env["ALTAVIZ_DATA_ROOT"] = str(root)
    args = [sys.executable, "-m", "altaviz.cli", "stream", "run", "--quiet", "--no-ml", "--idle-exit", "3"]
    args += ["--topic", stream.topic, "--dead-letter-topic", stream.dead_letter_topic, "--group", stream.group]
    args += ["--partitions", str(stream.partitions), "--grace", str(stream.grace_seconds), "--lake", str(root / "lake")]
    return subprocess.Popen(args, env=env, stdout=log, stderr=log)


def _wait_for(path, text: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"expected {text!r} in {path}: {path.read_text()[-2000:]}"
        time.sleep(0.1)


def _stored(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM sensor_readings").fetchone()[0]


def _snapshot(url: str) -> tuple[list, list]:
    with psycopg.connect(url) as conn:
        raw = conn.execute(
            "SELECT compressor_id, timestamp, vibration_mms, horsepower, alert_mask, kafka_partition, kafka_offset "
            "FROM sensor_readings ORDER BY 1, 2"
        ).fetchall()
        windows = conn.execute(
            "SELECT compressor_id, sensor, window_start, window_end, avg, min, max, stddev, count, anomaly_count "
            "FROM sensor_aggregates ORDER BY 1, 2, 3"
        ).fetchall()
    return raw, windows


@pytest.fixture
def reference_url(fleet_url):
    from altaviz.serve.db.export import export_compressors
    from altaviz.serve.db.migrate import migrate

    with psycopg.connect(fleet_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(REF_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(REF_DB)))
        import polars as pl

        fleet = pl.read_database("SELECT * FROM compressors", conn).drop("updated_at")
    url = fleet_url.rsplit("/", 1)[0] + "/" + REF_DB
    migrate(url)
    export_compressors(url, fleet)
    yield url
    with psycopg.connect(fleet_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(REF_DB)))


def test_sigkill_mid_stream_loses_and_duplicates_nothing(stream, fleet_url, reference_url, tmp_path, kit):
    tmp_path.chmod(0o755)
    messages = []
    for second in range(300):  # 5 minutes of event time, 4 assets, one reading per second each
        stamp = f"2026-01-05T00:{second // 60:02d}:{second % 60:02d}Z"
        for i, asset in enumerate(kit.assets):
            value = kit.reading(asset, stamp, vibration_mms=1.0 + ((second * 7 + i) % 90) / 10)
            messages.append((asset, value))
        if second % 50 == 7:
            messages.append(("COMP-0002", b"{oops"))
        if second % 60 == 30 and second > 60:  # a straggler for the previous minute, closed 25 s ago: late
            messages.append(("COMP-0003", kit.reading("COMP-0003", f"2026-01-05T00:{second // 60 - 1:02d}:00.5Z")))
    log_path = tmp_path / "processor.log"
    with open(log_path, "ab") as log:
        proc = _spawn(stream, fleet_url, tmp_path, log)
        _wait_for(log_path, "assigned partitions")
        chunks = [messages[i : i + 200] for i in range(0, len(messages), 200)]

        def publish() -> None:
            for chunk in chunks:
                kit.send(stream, chunk)
                time.sleep(0.25)

        sender = threading.Thread(target=publish)
        sender.start()
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        at_kill = _stored(fleet_url)
        proc = _spawn(stream, fleet_url, tmp_path, log)
        sender.join()
        assert proc.wait(timeout=120) == 0, log_path.read_text()[-3000:]
    assert 0 < at_kill < len(messages) - 20  # the kill did land mid-stream

    reference = dataclasses.replace(stream, group=stream.group + "-reference")
    kit.run_processor(reference, reference_url, tmp_path / "reference-lake")

    raw, windows = _snapshot(fleet_url)
    ref_raw, ref_windows = _snapshot(reference_url)
    dead = kit.dead_letters(stream)  # both runs wrote here; keys are per source message
    assert len(raw) == len({(r[0], r[1]) for r in raw}) == len({(r[5], r[6]) for r in raw})  # no duplicates
    assert len(raw) == 300 * 4  # no loss: every valid, on-time reading is stored
    assert sorted(d["reason"] for d in dead) == ["late"] * 4 + ["malformed_record"] * 6
    assert len(raw) + len(dead) == len(messages)
    assert raw == ref_raw
    assert windows == ref_windows
    assert len(windows) == 4 * 6 * 4  # minutes 0-3 closed; minute 4 waits for a watermark past 00:05:05

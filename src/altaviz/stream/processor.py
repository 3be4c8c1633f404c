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

import gc
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from altaviz.console import err
from altaviz.errors import AltavizError
from altaviz.profiles.model import Profile
from altaviz.stream.bronze_sink import BronzeAppender, bronze_ends
from altaviz.stream.config import StreamConfig
from altaviz.stream.sink import SERVING_ID, Fenced, KeyConflict, PgSink
from altaviz.stream.validate import DUPLICATE, closed_mark, decode, validate_batch
from altaviz.stream.window_state import OpenWindows

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
        self.sink = PgSink(database_url, profile, config.group, config.topic)
        self.bronze = BronzeAppender(self.lake, profile, config.topic, config.bronze_interval_s)
        self.anomaly = anomaly
        self.on_batch = on_batch
        self.on_assigned = on_assign
        self.counters = Counters()
        self.windows = OpenWindows(profile, config.window_seconds * 1_000_000)
        self.watermarks: dict[int, int | None] = {}
        self.next_offsets: dict[int, int] = {}
        self.bronze_from: dict[int, int] = {}  # offsets below are in bronze already
        self.window_us = config.window_seconds * 1_000_000
        self.grace_us = int(config.grace_seconds * 1_000_000)
        self.fleet = self.sink.fleet()
        self.fleet_at = time.monotonic()
        self.stop = False
        self.delivery_errors: list[str] = []

    def warm_up(self) -> float:
        """Run a small synthetic micro-batch through decoding, validation, window staging and aggregation (nothing
        is written), then move the objects alive so far out of the garbage collector's view (`gc.freeze`).

        Called before joining the group: the first real batches otherwise pay one-time costs (lazy imports, query
        planning, first allocations; ~0.3 s measured) while messages queue up behind them, which showed as a
        latency spike in the first seconds of every run. Returns the seconds it took."""
        t0 = time.perf_counter()
        p = self.profile
        assets = self.fleet.get_column(p.id_column).cast(pl.String).head(8).to_list() or ["WARM-UP"]
        now_us = int(time.time() * 1e6) // self.window_us * self.window_us
        lines = []
        for i in range(512):
            reading = {p.id_column: assets[i % len(assets)]}
            reading[p.time_column] = datetime.fromtimestamp((now_us + i * 1_000_000) / 1e6, UTC).isoformat()
            reading.update({s: sum(p.sensors[s].normal_band) / 2 for s in p.sensor_names})
            lines.append(json.dumps(reading).encode())
        lines += [b"{not json", b'{"' + p.id_column.encode() + b'": "NO-SUCH-ASSET"}']
        n = len(lines)
        frame = decode(lines, np.zeros(n, np.int32), np.arange(n, dtype=np.int64), np.full(n, now_us), p)
        decoded, _ = validate_batch(frame, self.fleet, {0: None}, p, self.window_us, self.grace_us)
        scratch = OpenWindows(p, self.window_us)
        scratch.lookup(decoded.accepted)
        scratch.apply(scratch.stage(decoded.accepted, {}))
        scratch.lookup(decoded.accepted)
        scratch.stage(decoded.accepted.head(0), {0: now_us + self.window_us * 2}, {0: now_us + self.window_us})
        self.bronze.warm_up(decoded.accepted)
        gc.collect()
        gc.freeze()
        return time.perf_counter() - t0

    # -- rebalancing -------------------------------------------------------------------------------------------
    def _on_assign(self, consumer, partitions) -> None:
        ids = [tp.partition for tp in partitions]
        saved = self.sink.progress(ids)
        ends = bronze_ends(self.lake, self.config.topic)
        for tp in partitions:
            nxt, wm = saved.get(tp.partition, (None, None))
            self.watermarks[tp.partition] = wm
            self._load_windows(tp.partition, wm)
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
            self.windows.drop(tp.partition)
        consumer.unassign()

    def _load_windows(self, partition: int, watermark: int | None) -> None:
        """The partition's open windows from the stored rows (none before its first watermark)."""
        if watermark is None:
            self.windows.drop(partition)
        else:
            self.windows.load(partition, self.sink.open_rows(partition, self._mark(watermark)))

    def _resync(self, consumer, partitions: list[int]) -> None:
        """Another processor committed on these partitions: take their state from PostgreSQL again and seek
        back to the stored next offsets (the batch is dropped; its messages are read again)."""
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        saved = self.sink.progress(partitions)
        for p in partitions:
            nxt, wm = saved.get(p, (None, None))
            self.watermarks[p] = wm
            if nxt is None:
                self.next_offsets.pop(p, None)
            else:
                self.next_offsets[p] = nxt
            self._load_windows(p, wm)
            consumer.seek(TopicPartition(self.config.topic, p, OFFSET_BEGINNING if nxt is None else nxt))
        err.print(f"partitions {partitions}: another processor committed; resumed from the stored progress")

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
        closes: dict[int, int] = {}
        progress: dict[int, tuple[int, int | None]] = {}
        for p in sorted(before):
            wm_old, wm_new = before[p], after.get(p, before[p])
            last = int(offs_a[parts_a == p].max())
            progress[p] = (last + 1, wm_new)
            if wm_new is not None:
                new = self._mark(wm_new)
                old = None if wm_old is None else self._mark(wm_old)
                if old is None or new > old:
                    closes[p] = new
        expected = {p: self.next_offsets.get(p) for p in before}
        self._dlq_s = 0.0
        t_validated = time.perf_counter()
        try:
            try:
                outcome = self._write(decoded, values, closes, progress, expected, producer, known=None)
            except KeyConflict:
                outcome = self._write(decoded, values, closes, progress, expected, producer, known=self.sink)
        except Fenced as fenced:
            self._resync(consumer, fenced.partitions)
            return
        inserted, rejected, predictions, rows = outcome
        floor = pl.col("_partition").replace_strict(self.bronze_from, default=0, return_dtype=pl.Int64)
        self.bronze.add(rows.filter(pl.col("_offset") >= floor), {p: nxt for p, (nxt, _) in progress.items()})
        for p, (nxt, wm) in progress.items():
            self.watermarks[p], self.next_offsets[p] = wm, nxt
        self._commit_offsets(consumer, progress)
        if TIMING:
            now = time.perf_counter()
            lag = time.time() - min(stamps) / 1000
            err.print(
                f"batch {len(values)} validate {t_validated - t_start:.3f} write {now - t_validated:.3f} "
                f"dlq {self._dlq_s:.3f} oldest lag {lag:.3f} open {self.windows.size()}"
            )
        c = self.counters
        c.messages += len(values)
        c.stored += inserted
        c.dead_lettered += rejected.height
        for reason, n in rejected.group_by("_reason").len().iter_rows():
            c.by_reason[reason] = c.by_reason.get(reason, 0) + n
        c.batches += 1
        c.windows_closed += len(closes)
        c.predictions += 0 if predictions is None else predictions.height

    def _write(self, decoded, values, closes, progress, expected, producer, known):
        """Split the accepted readings into new / redelivered / stored duplicates (from the open windows, or
        from the database when `known` is the sink, after a `KeyConflict`), dead-letter the rejected ones,
        write the transaction, then update the open windows. Returns (inserted, rejected, predictions, rows)."""
        accepted = decoded.accepted
        in_state, state_duplicate = self.windows.lookup(accepted)
        in_state = pl.Series(in_state)
        if known is None:
            redelivered, duplicate = in_state, pl.Series(state_duplicate)
        else:
            stored = known.stored_messages(accepted)
            flags = accepted.select("_partition", "_offset").join(
                stored, on=["_partition", "_offset"], how="left", maintain_order="left"
            )["same_message"]
            redelivered, duplicate = flags.fill_null(False), (~flags).fill_null(False)
        dups = accepted.filter(duplicate).with_columns(
            _reason=pl.lit(DUPLICATE), _reason_detail=pl.lit("already stored from an earlier message")
        )
        rejected = pl.concat([decoded.rejected, dups.select(decoded.rejected.columns)])
        rows = accepted.filter(~duplicate & ~redelivered)
        seals = {p: wm - self.grace_us for p, (_, wm) in progress.items() if wm is not None}
        staged = self.windows.stage(accepted.filter(~duplicate & ~in_state), closes, seals)
        if known is None:
            predictions = self.anomaly.score_batch(rows) if self.anomaly is not None else None
            self._scored = predictions  # kept for a retry: scoring again would feed the online window twice
            self._send_dead_letters(producer, rejected, values)  # in flight while PostgreSQL works
        else:
            predictions = self._scored
            if predictions is not None:
                keys = rows.select(
                    pl.col(self.profile.id_column).alias(SERVING_ID),
                    pl.col(self.profile.time_column).alias("timestamp"),
                )
                predictions = predictions.join(keys, on=[SERVING_ID, "timestamp"], how="semi")
            self._send_dead_letters(producer, dups, values)  # the rest went out with the first attempt

        def before_commit() -> None:
            t = time.perf_counter()
            self._await_dead_letters(producer)
            self._dlq_s += time.perf_counter() - t

        inserted = self.sink.write(rows, staged.aggregates, progress, expected, predictions, before_commit)
        self.windows.apply(staged)
        return inserted, rejected, predictions, rows

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

        self.warm_up()
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

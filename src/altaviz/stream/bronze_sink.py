"""Accepted stream readings -> the bronze Delta table, so the batch ETL sees streamed data too.

Appends run on a background thread every `interval_s` (a Delta commit costs tens of milliseconds and must not
hold up the raw path). Each commit records in its metadata, per partition, the next offset it covers
(`altaviz.stream.ends`). PostgreSQL is the system of record of the stream: when a processor dies before an
append, the next one to own the partition re-reads the missing rows from `sensor_readings` (by partition and
offset) and appends them, so bronze ends up with every accepted reading exactly once.

Bronze rows from the stream: `_source_file` = `kafka:<topic>/<partition>`, `_source_row` = the offset,
`_batch_id` = `stream-<uuid>`; no `altaviz.batch_id` commit metadata (that marks file batches with a ledger).
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa

from altaviz.lake.schema import TIME, bronze_schema
from altaviz.lake.tables import history, table_exists, write_table
from altaviz.profiles.model import Profile

ENDS_KEY = "altaviz.stream.ends"
TOPIC_KEY = "altaviz.stream.topic"
HISTORY_DEPTH = 500


def bronze_rows(readings: pl.DataFrame, profile: Profile, topic: str, batch_id: str, now: datetime) -> pl.DataFrame:
    """Accepted readings (reading columns + `_partition`, `_offset`) -> bronze-schema rows."""
    schema = bronze_schema(profile)
    return readings.select(
        *[pl.col(c) for c in (profile.id_column, profile.time_column, *profile.sensor_names)],
        pl.lit(None, pl.String).alias("_raw_record"),
        pl.lit(None, pl.String).alias("_parse_error"),
        pl.lit(None, pl.String).alias("_parse_detail"),
        (pl.lit(f"kafka:{topic}/") + pl.col("_partition").cast(pl.String)).alias("_source_file"),
        pl.col("_offset").cast(pl.Int64).alias("_source_row"),
        pl.lit(now, dtype=TIME).alias("_ingested_at"),
        pl.lit(batch_id, dtype=pl.String).alias("_batch_id"),
        pl.col(profile.time_column).dt.date().alias("date"),
    ).cast(dict(schema))


def bronze_ends(lake, topic: str) -> dict[int, int]:
    """partition -> next offset already in bronze, from the recent commits' metadata."""
    if not table_exists(lake, "bronze"):
        return {}
    ends: dict[int, int] = {}
    for commit in history(lake, "bronze", limit=HISTORY_DEPTH):
        meta = commit["metadata"]
        if meta.get(TOPIC_KEY) != topic or ENDS_KEY not in meta:
            continue
        for part, end in json.loads(meta[ENDS_KEY]).items():
            ends[int(part)] = max(ends.get(int(part), 0), int(end))
    return ends


class BronzeAppender:
    def __init__(self, lake, profile: Profile, topic: str, interval_s: float) -> None:
        self.lake, self.profile, self.topic, self.interval_s = lake, profile, topic, interval_s
        self.schema = bronze_schema(profile)
        self.pending: list[pl.DataFrame] = []
        self.ends: dict[int, int] = {}
        self.last = time.monotonic()
        self.jobs: queue.Queue[tuple[list[pl.DataFrame], dict[int, int]] | None] = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self.appended = 0
        self.worker = threading.Thread(target=self._run, name="altaviz-bronze", daemon=True)
        self.worker.start()

    def warm_up(self, readings: pl.DataFrame) -> None:
        """Convert a few readings to bronze rows and Arrow as an append does, writing nothing. pyarrow imports
        pandas on its first array conversion (~0.7 s of CPU holding the GIL, which stalled the processor's
        thread for 1-2 s at the first append of every run when the writer thread paid it)."""
        rows = bronze_rows(readings.head(8), self.profile, self.topic, "warm-up", datetime.now(UTC))
        pl.from_arrow(pa.schema(rows.to_arrow().schema).empty_table())

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                self.jobs.task_done()
                return
            frames, ends = job
            try:
                self._append(frames, ends)
            except BaseException as exc:  # surfaced on the processor's thread
                self.error = exc
            finally:
                self.jobs.task_done()

    def _append(self, frames: list[pl.DataFrame], ends: dict[int, int]) -> None:
        now = datetime.now(UTC)
        batch = f"stream-{uuid.uuid4().hex[:12]}"
        rows = [bronze_rows(f, self.profile, self.topic, batch, now) for f in frames if f.height]
        frame = pl.concat(rows) if rows else pl.DataFrame(schema=self.schema)
        meta = {TOPIC_KEY: self.topic, ENDS_KEY: json.dumps({str(p): e for p, e in sorted(ends.items())})}
        if frame.height or not table_exists(self.lake, "bronze"):
            write_table(self.lake, "bronze", frame, schema=self.schema, partition_by=["date"], metadata=meta)
            self.appended += frame.height

    def add(self, readings: pl.DataFrame, ends: dict[int, int]) -> None:
        """Queue accepted readings; `ends` = partition -> next offset after this micro-batch."""
        self.raise_error()
        self.pending.append(readings)
        self.ends.update(ends)
        if time.monotonic() - self.last >= self.interval_s:
            self.flush(wait=False)

    def tick(self) -> None:
        """Hand pending rows to the writer when the interval has passed (called when the stream is idle)."""
        self.raise_error()
        if (self.pending or self.ends) and time.monotonic() - self.last >= self.interval_s:
            self.flush(wait=False)

    def flush(self, wait: bool = True) -> None:
        if self.pending or self.ends:
            self.jobs.put((self.pending, self.ends))
            self.pending, self.ends = [], {}
        self.last = time.monotonic()
        if wait:
            self.jobs.join()
            self.raise_error()

    def raise_error(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def backfill(self, readings: pl.DataFrame, ends: dict[int, int]) -> None:
        """Append rows re-read from PostgreSQL now (on partition assignment, before any new data)."""
        self.flush()
        self._append([readings], ends)

    def close(self) -> None:
        self.flush()
        self.jobs.put(None)
        self.worker.join(timeout=60)

"""`altaviz stream produce`: simulator readings published at a steady rate, one JSON message per reading.

The fleet comes from the batch simulator (`simulate_fleet`: physics, failure modes and its fault kinds:
nulls, spikes, duplicates, out-of-order, late, stuck, unknown assets, future timestamps, malformed lines),
simulated over two days at the coarsest whole-second interval that yields enough readings per asset, then
re-timed onto the stream: reading step k of an asset gets event time t0 + k * assets / rate, and rows go out
in arrival order (by file, then by the event time each asset's file has reached), so out-of-order rows arrive a
few readings late, duplicates a few dozen readings after the original, and late rows (file of a later day) far
beyond any window's grace. Future-timestamp rows keep the simulator's far-future time. The signal shapes are compressed
in time accordingly (a simulated day passes in `seconds / 2`): realistic values, not a realistic time scale.

Messages are keyed by asset id (per-asset ordering). The fleet is upserted into the `compressors` table first,
so the processor knows which asset ids exist.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from altaviz.errors import AltavizError
from altaviz.profiles.model import Profile
from altaviz.simulate.faults import FaultRates

SIM_DAYS = 2
DAY_US = 86_400_000_000
SIM_START = datetime(2026, 1, 5, tzinfo=UTC)  # fixed: the same seed gives the same messages
CHUNK_SECONDS = 60
TICK_S = 0.002  # messages due within this are sent together


class ProduceError(AltavizError):
    """Bad producer arguments or undeliverable messages."""


@dataclass
class ProduceReport:
    sent: int = 0  # handed to the client
    failed: int = 0  # delivery failed (reported), or still queued when the producer gave up
    seconds: float = 0.0
    faults: dict[str, int] = field(default_factory=dict)
    assets: list[str] = field(default_factory=list)

    @property
    def produced(self) -> int:
        """Messages the broker acknowledged: the client reports failed deliveries only (one Python callback per
        message would cost about as much CPU as the send itself at 50k messages/s)."""
        return self.sent - self.failed


@dataclass
class Planned:
    """One chunk of messages in emission order: key, value (JSON bytes), emission offset from t0 (s)."""

    keys: list[bytes]
    values: list[bytes]
    emit_s: np.ndarray
    metadata: pl.DataFrame
    faults: dict[str, int]


def _arrival_order(routing: pl.DataFrame, times: pl.Series, far_us: int) -> np.ndarray:
    """Rows in arrival order: by file date, then the latest event time the asset's file has reached at that row,
    then asset. The running maximum keeps the file's own disorder (an out-of-order or duplicated row arrives right
    after the rows it follows in the file; a late row sits in a later day's file) while a gap in one asset's
    series (downtime after a failure) does not push its later rows ahead of the fleet's, which would make the
    other assets' readings late. Far-future rows do not move the running maximum. A late row (its event on a day
    before its file's date) arrives when the fleet reaches its event time plus a day: the simulator puts it at
    the end of its asset's block, where it would arrive with the file's last rows and, for the last day a plan
    keeps, be cut off with the surplus beyond rate x seconds (no late reading was ever sent)."""
    t = times.dt.epoch("us")
    frame = routing.with_row_index("_row").with_columns(pl.when(t < far_us).then(t).alias("_t"))
    reached = pl.col("_t").cum_max().forward_fill().backward_fill().over("file_date", "host")
    late = t < pl.col("file_date").cast(pl.Datetime("us", "UTC")).dt.epoch("us")
    frame = frame.with_columns(pl.when(late).then(t + DAY_US).otherwise(reached).alias("_reached"))
    return frame.sort("file_date", "_reached", "host", maintain_order=True)["_row"].to_numpy()


def plan_messages(
    profile: Profile,
    assets: int,
    rate: float,
    seconds: float,
    *,
    seed: int = 42,
    faults: FaultRates | None = None,
    t0: datetime,
) -> Planned:
    """Simulate and re-time `rate * seconds` readings (about) for `assets` assets starting at `t0`."""
    from altaviz.simulate.engine import simulate_fleet
    from altaviz.simulate.writers import break_line

    if assets < 1 or rate <= 0 or seconds <= 0:
        raise ProduceError(f"producer: expected assets >= 1, rate > 0, seconds > 0, got {assets}, {rate}, {seconds}")
    steps = max(2, math.ceil(rate * seconds / assets))
    interval_s = max(1, (SIM_DAYS * 86_400) // steps)
    days = max(SIM_DAYS, math.ceil(steps * interval_s / 86_400))
    fleet = simulate_fleet(
        profile, assets, days, timedelta(seconds=interval_s), seed, start=SIM_START, faults=faults or FaultRates()
    )
    sim_start_us = int(fleet.start.timestamp() * 1e6)
    sim_end_us = int(fleet.end.timestamp() * 1e6)
    order = _arrival_order(fleet.routing, fleet.readings[profile.time_column], sim_end_us)
    readings = fleet.readings[order]
    routing = fleet.routing[order]
    total = min(readings.height, int(round(rate * seconds)))
    readings, routing = readings.head(total), routing.head(total)
    step_s = assets / rate
    ts = readings[profile.time_column].dt.epoch("us")
    t0_us = int(t0.timestamp() * 1e6)
    rescaled = t0_us + ((ts - sim_start_us) * (step_s / interval_s)).cast(pl.Int64)
    event = pl.select(pl.when(ts >= sim_end_us).then(ts).otherwise(rescaled)).to_series()
    readings = readings.with_columns(event.cast(pl.Datetime("us", "UTC")).alias(profile.time_column))
    lines = readings.select(
        pl.struct(
            pl.col(profile.id_column),
            pl.col(profile.time_column).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"),
            *[pl.col(s) for s in profile.sensor_names],
        )
        .struct.json_encode()
        .alias("line")
    )["line"]
    broken = np.flatnonzero(routing["malformed"].to_numpy())
    if broken.size:
        how = routing["malformed"].to_numpy()[broken]
        fixed = [
            break_line(line, int(h), int(r), profile.sensor_names)
            for line, h, r in zip(lines.gather(broken).to_list(), how, broken, strict=True)
        ]
        lines = lines.scatter(broken, fixed)
    keys = [k.encode() for k in readings[profile.id_column].fill_null("").to_list()]
    values = [v.encode() for v in lines.to_list()]
    emit = np.arange(total, dtype=np.float64) / rate
    return Planned(keys, values, emit, fleet.metadata, dict(fleet.fault_counts))


def chunks(
    profile: Profile,
    assets: int,
    rate: float,
    seconds: float | None,
    seed: int,
    faults: FaultRates | None,
    t0: datetime,
) -> Iterator[tuple[float, Planned]]:
    """(offset from t0 in s, chunk) for the whole run; an open-ended run continues chunk after chunk."""
    k = 0
    while seconds is None or k * CHUNK_SECONDS < seconds:
        length = CHUNK_SECONDS if seconds is None else min(CHUNK_SECONDS, seconds - k * CHUNK_SECONDS)
        start = t0 + timedelta(seconds=k * CHUNK_SECONDS)
        yield k * CHUNK_SECONDS, plan_messages(
            profile, assets, rate, length, seed=seed + k, faults=faults, t0=start
        )  # fmt: skip
        k += 1


def publish(producer, topic: str, planned: Planned, t0_mono: float, offset_s: float, report: ProduceReport,
            stop=lambda: False) -> None:  # fmt: skip
    """Send a chunk on schedule: message i no earlier than t0 + offset + emit_s[i]."""
    n = len(planned.values)
    sent = 0

    def delivered(err, _msg) -> None:  # called for failed deliveries only (`delivery.report.only.error`)
        if err is not None:
            report.failed += 1

    while sent < n and not stop():
        now = time.monotonic() - t0_mono - offset_s
        due = int(np.searchsorted(planned.emit_s, now, side="right"))
        if due <= sent:  # wait at least TICK_S: waking per message would spin a core at 50k messages/s
            producer.poll(min(0.005, max(TICK_S, planned.emit_s[sent] - now)))
            continue
        for i in range(sent, due):
            while True:
                try:
                    producer.produce(topic, planned.values[i], planned.keys[i], on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.01)
        report.sent += due - sent
        sent = due
        producer.poll(0)


def produce(
    config,
    database_url: str | None,
    profile: Profile,
    *,
    assets: int,
    rate: float,
    seconds: float | None,
    seed: int = 42,
    faults: FaultRates | None = None,
    stop=lambda: False,
) -> ProduceReport:
    """Register the fleet in PostgreSQL (when a URL is given) and publish readings at `rate` per second."""
    from confluent_kafka import Producer

    report = ProduceReport()
    producer = Producer(config.producer_conf())
    t0 = datetime.now(UTC) + timedelta(seconds=0.5)
    started = None
    for offset_s, planned in chunks(profile, assets, rate, seconds, seed, faults, t0):
        if started is None:
            if database_url is not None:
                from altaviz.serve.db.export import export_compressors

                export_compressors(database_url, planned.metadata)
            report.assets = planned.metadata[profile.id_column].to_list()
            wait = (t0 - datetime.now(UTC)).total_seconds()
            started = time.monotonic() + max(0.0, wait)
            time.sleep(max(0.0, wait))
        for kind, n in planned.faults.items():
            report.faults[kind] = report.faults.get(kind, 0) + n
        publish(producer, config.topic, planned, started, offset_s, report, stop)
        if stop():
            break
    left = producer.flush(60)
    report.failed += left
    report.seconds = time.monotonic() - (started or time.monotonic())
    return report

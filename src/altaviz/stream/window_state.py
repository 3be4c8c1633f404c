"""The open windows of the stream processor: per partition, the accepted readings whose window has not closed.

They serve two purposes:
- **Stored duplicates without a database round trip.** A reading whose (asset id, timestamp) is already stored
  from an earlier message of its partition must lie in an open window: a reading of a closed window is late and
  is routed before this check. So the keys of the open windows (with the offset of the message each came from)
  are all the processor has to look up, in memory, to tell a true duplicate (stored from another message) from
  a redelivery (stored from this very message).
- **Window rows.** When the watermark passes a window's end plus grace, the window's readings are aggregated here
  (avg / min / max / sample stddev / count / anomaly count per asset x sensor) and written in the micro-batch
  transaction. Rows are sorted by time before aggregating, so the numbers do not depend on how the
  messages were batched or on restarts.

The state is derived from the system of record: a processor that takes a partition over reloads its open windows
from `sensor_readings` (rows at or after the partition's closed mark). Nothing changes until `apply` is called,
after the transaction committed: `stage` computes what a batch would do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from altaviz.lake.schema import TIME
from altaviz.profiles.model import Profile


@dataclass
class Staged:
    """What one micro-batch does to the open windows, applied after its transaction commits."""

    added: dict[int, dict[int, pl.DataFrame]] = field(default_factory=dict)  # partition -> window -> readings
    keys: dict[int, dict[int, dict[int, int]]] = field(default_factory=dict)  # partition -> window -> key -> offset
    closed: dict[int, int] = field(default_factory=dict)  # partition -> new closed mark (epoch us)
    aggregates: pl.DataFrame | None = None


class OpenWindows:
    """Per partition: the readings of windows still open, by window index, and their keys -> source offset."""

    def __init__(self, profile: Profile, window_us: int) -> None:
        self.profile, self.window_us = profile, window_us
        self.columns = [profile.id_column, profile.time_column, *profile.sensor_names, "alert_mask", "_offset"]
        self.key_columns = [profile.id_column, profile.time_column, "_partition", "_offset"]
        self.shift = int(window_us).bit_length()
        self.codes: dict[str, int] = {}
        self.rows: dict[int, dict[int, list[pl.DataFrame]]] = {}
        self.keys: dict[int, dict[int, dict[int, int]]] = {}

    # -- keys ----------------------------------------------------------------------------------------------------
    def _groups(self, frame: pl.DataFrame) -> list[tuple[int, int, pl.DataFrame, list[int], list[int]]]:
        """Rows by (partition, window): (partition, window index, rows, keys, offsets). A key is exact within its
        window: asset code << bits(window) | microseconds into the window."""
        for asset in frame.get_column(self.profile.id_column).unique(maintain_order=True).to_list():
            self.codes.setdefault(asset, len(self.codes))
        t = pl.col(self.profile.time_column).dt.epoch("us")
        keyed = frame.with_columns(
            (t // self.window_us).alias("_w"),
            (
                pl.col(self.profile.id_column).replace_strict(self.codes, return_dtype=pl.Int64) * (1 << self.shift)
                + (t - t // self.window_us * self.window_us)
            ).alias("_key"),
        )
        out = []
        for (p, w), part in keyed.partition_by("_partition", "_w", as_dict=True, maintain_order=True).items():
            keys, offsets = part.get_column("_key").to_list(), part.get_column("_offset").to_list()
            out.append((int(p), int(w), part.drop("_w", "_key"), keys, offsets))
        return out

    def lookup(self, accepted: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Boolean masks over `accepted`: (redelivered: stored from this same message, duplicate: stored from
        another message of the partition). `accepted` holds `_partition` and `_offset`."""
        n = accepted.height
        redelivered, duplicate = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        if n == 0 or not self.keys:
            return redelivered, duplicate
        index = accepted.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_i"), *self.key_columns)
        for p, w, part, keys, offsets in self._groups(index):
            bucket = self.keys.get(p, {}).get(w)
            if not bucket:
                continue
            get = bucket.get
            stored = np.asarray([get(k, -1) for k in keys], dtype=np.int64)
            hit = stored >= 0
            if hit.any():
                rows = part.get_column("_i").to_numpy()
                same = hit & (stored == np.asarray(offsets, dtype=np.int64))
                redelivered[rows[same]] = True
                duplicate[rows[hit & ~same]] = True
        return redelivered, duplicate

    # -- one micro-batch ---------------------------------------------------------------------------------------
    def stage(self, new: pl.DataFrame, closes: dict[int, int]) -> Staged:
        """`new`: readings (with `_partition`, `_offset`) that join the open windows, i.e. stored by this batch
        or stored before from the same message and not in the state yet; `closes`: partition -> new closed mark
        (epoch us)."""
        staged = Staged()
        if new.height:
            for p, w, part, keys, offsets in self._groups(new.select(*self.columns, "_partition")):
                staged.keys.setdefault(p, {})[w] = dict(zip(keys, offsets, strict=True))
                staged.added.setdefault(p, {})[w] = part.drop("_partition")
        closing = []
        for p, mark in closes.items():
            staged.closed[p] = mark
            limit = mark // self.window_us
            closing += [c for w, cs in self.rows.get(p, {}).items() if w < limit for c in cs]
            closing += [c for w, c in staged.added.get(p, {}).items() if w < limit]
        if closing:
            staged.aggregates = aggregate(pl.concat(closing), self.profile, self.window_us)
        return staged

    def apply(self, staged: Staged) -> None:
        for p, buckets in staged.keys.items():
            mine = self.keys.setdefault(p, {})
            for w, keys in buckets.items():
                mine.setdefault(w, {}).update(keys)
        for p, buckets in staged.added.items():
            mine = self.rows.setdefault(p, {})
            for w, frame in buckets.items():
                mine.setdefault(w, []).append(frame)
        for p, mark in staged.closed.items():  # after the adds: a batch's rows of a closed window go too
            limit = mark // self.window_us
            for store in (self.rows.get(p, {}), self.keys.get(p, {})):
                for w in [w for w in store if w < limit]:
                    del store[w]

    # -- ownership -----------------------------------------------------------------------------------------------
    def load(self, partition: int, stored: pl.DataFrame) -> None:
        """Replace a partition's state with its stored open-window rows (`self.columns` + `_partition`)."""
        self.drop(partition)
        if stored.height:
            self.apply(self.stage(stored, {}))

    def drop(self, partition: int) -> None:
        self.rows.pop(partition, None)
        self.keys.pop(partition, None)

    def size(self) -> int:
        return sum(c.height for buckets in self.rows.values() for cs in buckets.values() for c in cs)


def aggregate(rows: pl.DataFrame, profile: Profile, window_us: int) -> pl.DataFrame:
    """Readings of closed windows -> one row per (window, asset, sensor), columns in the order of
    the sink's `AGGREGATE_TYPES` (the `sensor_aggregates` table)."""
    aid, ts = profile.id_column, profile.time_column
    start = (pl.col(ts).dt.epoch("us") // window_us * window_us).cast(pl.Int64).cast(TIME)
    # a stable total order of each group's readings (unique times within an asset), whatever the batching:
    # sorting by time alone costs a tenth of sorting by (asset, time)
    rows = rows.sort(ts, maintain_order=True).with_columns(start.alias("window_start"))
    aggs = [pl.len().alias("count")]
    for i, s in enumerate(profile.sensor_names):
        x = pl.col(s)
        aggs += [
            x.mean().alias(f"{s}\x00avg"),
            x.min().alias(f"{s}\x00min"),
            x.max().alias(f"{s}\x00max"),
            x.std(ddof=1).alias(f"{s}\x00stddev"),
            ((pl.col("alert_mask") & (1 << i)) != 0).sum().cast(pl.Int32).alias(f"{s}\x00anomaly_count"),
        ]
    wide = rows.group_by(aid, "window_start", maintain_order=True).agg(aggs)
    window_end = pl.col("window_start") + pl.duration(microseconds=window_us)
    parts = [
        wide.select(
            "window_start",
            window_end.alias("window_end"),
            pl.col(aid).alias("compressor_id"),
            pl.lit(s).alias("sensor"),
            *[pl.col(f"{s}\x00{stat}").alias(stat) for stat in ("avg", "min", "max", "stddev")],
            pl.col("count").cast(pl.Int32),
            pl.col(f"{s}\x00anomaly_count").alias("anomaly_count"),
        )
        for s in profile.sensor_names
    ]
    return pl.concat(parts)

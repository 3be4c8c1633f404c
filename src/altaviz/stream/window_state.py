"""The open windows of the stream processor: per partition, the accepted readings whose window has not closed.

They serve two purposes:
- **Stored duplicates without a database round trip.** A reading whose (asset id, timestamp) is already stored
  from an earlier message of its partition must lie in an open window: a reading of a closed window is late and
  is routed before this check. So the keys of the open windows (with the offset of the message each came from)
  are all the processor has to look up, in memory, to tell a true duplicate (stored from another message) from
  a redelivery (stored from this very message).
- **Window rows** (avg / min / max / sample stddev / count / anomaly count per asset x sensor), computed in two
  steps so that no micro-batch pays for a whole window: a window is cut into `SLICES` time slices, and once the
  watermark minus grace has passed a slice's end, the slice's readings are summarised per asset (`summarise`:
  count, sum, min, max, sum of squared deviations from the slice mean). When the window closes, its slices'
  summaries are combined (`combine`). Aggregating a whole minute at the close took ~1 s at 50k readings/s and
  held the raw path up for that long.
  The numbers depend only on the window's readings, never on how the messages were batched or on restarts:
  readings are sorted by time within a slice, slices combine in time order, and a reading that joins a slice
  already summarised (late beyond grace, but its window still open) makes the slice be summarised again.

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

SLICES = 12  # time slices per window (5 s of a 1-minute window)


@dataclass
class Staged:
    """What one micro-batch does to the open windows, applied after its transaction commits."""

    added: dict[int, dict[int, pl.DataFrame]] = field(default_factory=dict)  # partition -> slice -> readings
    keys: dict[int, dict[int, dict[int, int]]] = field(default_factory=dict)  # partition -> window -> key -> offset
    summaries: dict[int, dict[int, pl.DataFrame]] = field(default_factory=dict)  # partition -> slice -> summary
    closed: dict[int, int] = field(default_factory=dict)  # partition -> new closed mark (epoch us)
    aggregates: pl.DataFrame | None = None


class OpenWindows:
    """Per partition: the readings of windows still open, by time slice, the summaries of the slices the
    watermark has passed, and the windows' keys -> source offset."""

    def __init__(self, profile: Profile, window_us: int) -> None:
        if window_us % SLICES:
            raise ValueError(f"window of {window_us} us: expected a multiple of {SLICES} us")
        self.profile, self.window_us, self.slice_us = profile, window_us, window_us // SLICES
        self.columns = [profile.id_column, profile.time_column, *profile.sensor_names, "alert_mask", "_offset"]
        self.key_columns = [profile.id_column, profile.time_column, "_partition", "_offset"]
        self.shift = int(window_us).bit_length()
        self.codes: dict[str, int] = {}
        self.rows: dict[int, dict[int, list[pl.DataFrame]]] = {}
        self.summaries: dict[int, dict[int, pl.DataFrame]] = {}
        self.keys: dict[int, dict[int, dict[int, int]]] = {}

    # -- keys ----------------------------------------------------------------------------------------------------
    def _groups(self, frame: pl.DataFrame) -> list[tuple[int, int, pl.DataFrame, list[int], list[int]]]:
        """Rows by (partition, slice): (partition, slice index, rows, keys, offsets). A key is exact within its
        window: asset code << bits(window) | microseconds into the window."""
        for asset in frame.get_column(self.profile.id_column).unique(maintain_order=True).to_list():
            self.codes.setdefault(asset, len(self.codes))
        t = pl.col(self.profile.time_column).dt.epoch("us")
        keyed = frame.with_columns(
            (t // self.slice_us).alias("_s"),
            (
                pl.col(self.profile.id_column).replace_strict(self.codes, return_dtype=pl.Int64) * (1 << self.shift)
                + (t - t // self.window_us * self.window_us)
            ).alias("_key"),
        )
        out = []
        for (p, sl), part in keyed.partition_by("_partition", "_s", as_dict=True, maintain_order=True).items():
            keys, offsets = part.get_column("_key").to_list(), part.get_column("_offset").to_list()
            out.append((int(p), int(sl), part.drop("_s", "_key"), keys, offsets))
        return out

    def lookup(self, accepted: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Boolean masks over `accepted`: (redelivered: stored from this same message, duplicate: stored from
        another message of the partition). `accepted` holds `_partition` and `_offset`."""
        n = accepted.height
        redelivered, duplicate = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        if n == 0 or not self.keys:
            return redelivered, duplicate
        index = accepted.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_i"), *self.key_columns)
        for p, sl, part, keys, offsets in self._groups(index):
            bucket = self.keys.get(p, {}).get(sl // SLICES)
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
    def stage(self, new: pl.DataFrame, closes: dict[int, int], seals: dict[int, int] | None = None) -> Staged:
        """`new`: readings (with `_partition`, `_offset`) that join the open windows, i.e. stored by this batch
        or stored before from the same message and not in the state yet; `closes`: partition -> new closed mark
        (epoch us); `seals`: partition -> watermark minus grace (epoch us): slices ending by then are summarised
        (those without a summary, and those this batch adds readings to)."""
        staged = Staged()
        if new.height:
            for p, sl, part, keys, offsets in self._groups(new.select(*self.columns, "_partition")):
                staged.keys.setdefault(p, {}).setdefault(sl // SLICES, {}).update(zip(keys, offsets, strict=True))
                staged.added.setdefault(p, {})[sl] = part.drop("_partition")
        for p, seal in (seals or {}).items():
            limit, done = seal // self.slice_us, self.summaries.get(p, {})
            added = staged.added.get(p, {})
            due = [sl for sl in {*self.rows.get(p, {}), *added} if sl < limit and (sl in added or sl not in done)]
            staged.summaries[p] = self._summarise(p, due, staged)
        parts = []
        for p, mark in closes.items():
            staged.closed[p] = mark
            limit, added = mark // self.slice_us, staged.added.get(p, {})
            fresh, done = staged.summaries.setdefault(p, {}), self.summaries.get(p, {})
            closing = sorted(sl for sl in {*self.rows.get(p, {}), *added} if sl < limit)
            fresh |= self._summarise(p, [sl for sl in closing if sl not in fresh and (sl in added or sl not in done)],
                                     staged)  # fmt: skip
            parts += [fresh[sl] if sl in fresh else done[sl] for sl in closing]
        if parts:
            staged.aggregates = combine(pl.concat(parts), self.profile, self.window_us)
        return staged

    def _summarise(self, partition: int, slices: list[int], staged: Staged) -> dict[int, pl.DataFrame]:
        """slice -> summary, for these slices of a partition (their stored readings plus the batch's)."""
        if not slices:
            return {}
        old, added = self.rows.get(partition, {}), staged.added.get(partition, {})
        done, aid = self.summaries.get(partition, {}), self.profile.id_column

        def readings(sl: int) -> pl.DataFrame:  # stored plus the batch's, one concat (not a filter per frame)
            return pl.concat([*old.get(sl, ()), *((added[sl],) if sl in added else ())])

        whole = [sl for sl in slices if sl not in done or sl not in added]
        out: dict[int, pl.DataFrame] = {}
        if whole:
            summary = summarise(pl.concat([readings(sl) for sl in whole]), self.profile, self.slice_us)
            out = {int(sl): part for (sl,), part in summary.partition_by("_slice", as_dict=True).items()}
        for sl in [sl for sl in slices if sl in done and sl in added]:  # summarised before: redo its assets only
            assets = pl.col(aid).is_in(added[sl].get_column(aid).unique().implode())
            redone = summarise(readings(sl).filter(assets), self.profile, self.slice_us)
            out[sl] = pl.concat([done[sl].filter(~assets), redone])
        return out

    def apply(self, staged: Staged) -> None:
        for p, buckets in staged.keys.items():
            mine = self.keys.setdefault(p, {})
            for w, keys in buckets.items():
                mine.setdefault(w, {}).update(keys)
        for p, slices in staged.added.items():
            mine, done, fresh = self.rows.setdefault(p, {}), self.summaries.get(p, {}), staged.summaries.get(p, {})
            for sl, frame in slices.items():
                mine.setdefault(sl, []).append(frame)
                if sl not in fresh:  # a summary without the batch's readings is stale
                    done.pop(sl, None)
        for p, fresh in staged.summaries.items():
            self.summaries.setdefault(p, {}).update(fresh)
        for p, mark in staged.closed.items():  # after the adds: a batch's rows of a closed window go too
            window, sl = mark // self.window_us, mark // self.slice_us
            for store, limit in ((self.rows.get(p, {}), sl), (self.summaries.get(p, {}), sl),
                                 (self.keys.get(p, {}), window)):  # fmt: skip
                for k in [k for k in store if k < limit]:
                    del store[k]

    # -- ownership -----------------------------------------------------------------------------------------------
    def load(self, partition: int, stored: pl.DataFrame) -> None:
        """Replace a partition's state with its stored open-window rows (`self.columns` + `_partition`)."""
        self.drop(partition)
        if stored.height:
            self.apply(self.stage(stored, {}))

    def drop(self, partition: int) -> None:
        self.rows.pop(partition, None)
        self.summaries.pop(partition, None)
        self.keys.pop(partition, None)

    def size(self) -> int:
        return sum(c.height for slices in self.rows.values() for cs in slices.values() for c in cs)


def _segments(frame: pl.DataFrame, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Start index and length of each run of equal `keys` in a frame sorted by them."""
    run = frame.select(pl.struct(keys).rle_id()).to_series().to_numpy()
    starts = np.flatnonzero(np.diff(run, prepend=-1))
    return starts, np.diff(np.append(starts, frame.height))


def _stats(x: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per segment: sum, min, max, sum of squared deviations from the segment mean. numpy's reductions over a
    segment depend only on its values in order, never on where the segment lies or what else the array holds
    (Polars' group kernels gave last-bit differences between a group alone and a group among others)."""
    sums = np.add.reduceat(x, starts)
    dev = x - np.repeat(sums / counts, counts)
    return sums, np.minimum.reduceat(x, starts), np.maximum.reduceat(x, starts), np.add.reduceat(dev * dev, starts)


def summarise(rows: pl.DataFrame, profile: Profile, slice_us: int) -> pl.DataFrame:
    """Readings -> one row per (asset, time slice): `_slice`, `count`, and per sensor its sum, min, max, sum of
    squared deviations from the slice mean (`m2`) and anomaly count. Readings are sorted by (asset, slice, time)
    first (unique times within an asset), so the sums do not depend on the order the readings came in."""
    aid, ts = profile.id_column, profile.time_column
    rows = rows.with_columns((pl.col(ts).dt.epoch("us") // slice_us).alias("_slice")).sort(aid, "_slice", ts)
    starts, counts = _segments(rows, [aid, "_slice"])
    mask = rows.get_column("alert_mask").to_numpy()
    out = {aid: rows.get_column(aid).gather(starts), "_slice": rows.get_column("_slice").gather(starts),
           "count": counts.astype(np.int64)}  # fmt: skip
    for i, s in enumerate(profile.sensor_names):
        total, lo, hi, m2 = _stats(rows.get_column(s).to_numpy(), starts, counts)
        out |= {f"{s}\x00sum": total, f"{s}\x00min": lo, f"{s}\x00max": hi, f"{s}\x00m2": m2}
        out[f"{s}\x00anomaly_count"] = np.add.reduceat((mask >> i) & 1, starts).astype(np.int32)
    return pl.DataFrame(out)


def combine(summaries: pl.DataFrame, profile: Profile, window_us: int) -> pl.DataFrame:
    """Slice summaries of closed windows -> one row per (window, asset, sensor), columns in the order of the
    sink's `AGGREGATE_TYPES` (the `sensor_aggregates` table). Slices combine in time order; the sum of squared
    deviations from the window mean is the sum over slices of m2 + count * (slice mean - window mean)^2."""
    aid = profile.id_column
    slice_us = window_us // SLICES
    start = (pl.col("_slice") * slice_us // window_us * window_us).cast(pl.Int64).cast(TIME)
    frame = summaries.with_columns(start.alias("window_start")).sort(aid, "_slice")
    starts, lengths = _segments(frame, [aid, "window_start"])
    n_b = frame.get_column("count").to_numpy().astype(np.float64)
    n = np.add.reduceat(n_b, starts)
    count = pl.Series("count", n.astype(np.int32))
    head = frame.select(
        pl.col("window_start").gather(starts),
        (pl.col("window_start").gather(starts) + pl.duration(microseconds=window_us)).alias("window_end"),
        pl.col(aid).gather(starts).alias("compressor_id"),
    )
    parts = []
    for s in profile.sensor_names:
        sum_b = frame.get_column(f"{s}\x00sum").to_numpy()
        avg = np.add.reduceat(sum_b, starts) / n
        spread = frame.get_column(f"{s}\x00m2").to_numpy() + n_b * (sum_b / n_b - np.repeat(avg, lengths)) ** 2
        m2 = np.add.reduceat(spread, starts)
        parts.append(
            head.with_columns(
                sensor=pl.lit(s),
                avg=avg,
                min=np.minimum.reduceat(frame.get_column(f"{s}\x00min").to_numpy(), starts),
                max=np.maximum.reduceat(frame.get_column(f"{s}\x00max").to_numpy(), starts),
                stddev=pl.Series(np.sqrt(m2 / np.maximum(n - 1, 1))).set(pl.Series(n <= 1), None),
                count=count,
                anomaly_count=np.add.reduceat(frame.get_column(f"{s}\x00anomaly_count").to_numpy(), starts).astype(
                    np.int32
                ),
            )
        )
    return pl.concat(parts)


def aggregate(rows: pl.DataFrame, profile: Profile, window_us: int) -> pl.DataFrame:
    """Readings of closed windows -> window rows (`summarise` then `combine`: the numbers the processor writes)."""
    return combine(summarise(rows, profile, window_us // SLICES), profile, window_us)

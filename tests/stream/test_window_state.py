"""The processor's open windows (no broker): window rows against a brute-force reference, independence from
batching, and the stored-duplicate lookup that replaces a database round trip."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from altaviz.lake.schema import TIME
from altaviz.profiles import load_profile
from altaviz.stream.window_state import OpenWindows, aggregate

MIN = 60_000_000
T0 = int(datetime(2026, 1, 5, 0, 0, tzinfo=UTC).timestamp() * 1_000_000)
PROFILE = load_profile("compressor")
SENSORS = PROFILE.sensor_names


def _readings(n: int, seed: int, partitions: int = 2) -> pl.DataFrame:
    """n readings of 5 assets over ~4 minutes, unique (asset, time), offsets in arrival order per partition."""
    rng = random.Random(seed)
    keys = set()
    while len(keys) < n:
        keys.add((f"COMP-{rng.randrange(5) + 1:04d}", T0 + rng.randrange(4 * MIN)))
    rows = sorted(keys, key=lambda k: k[1] + rng.randrange(-2_000_000, 2_000_000))  # a little out of order
    frame = pl.DataFrame(
        {
            "compressor_id": [a for a, _ in rows],
            "timestamp": pl.Series([t for _, t in rows], dtype=pl.Int64).cast(TIME),
            **{s: [rng.uniform(0, 100) + 1e6 * (i % 2) for _ in rows] for i, s in enumerate(SENSORS)},
            "alert_mask": pl.Series([rng.randrange(64) for _ in rows], dtype=pl.Int32),
        }
    )
    part = frame["compressor_id"].str.slice(-1).cast(pl.Int32) % partitions  # keyed by asset
    frame = frame.with_columns(_partition=part)
    return frame.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("_partition").alias("_offset"))


def _reference(rows: pl.DataFrame) -> dict[tuple, tuple]:
    """(asset, sensor, window start us) -> (avg, min, max, stddev, count, anomaly_count), in plain Python."""
    groups: dict[tuple, list] = {}
    for r in rows.iter_rows(named=True):
        t = int(r["timestamp"].timestamp() * 1_000_000)
        start = t // MIN * MIN
        for i, s in enumerate(SENSORS):
            groups.setdefault((r["compressor_id"], s, start), []).append((r[s], bool(r["alert_mask"] & (1 << i))))
    out = {}
    for key, values in groups.items():
        xs = [x for x, _ in values]
        mean = math.fsum(xs) / len(xs)
        sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
        out[key] = (mean, min(xs), max(xs), sd, len(xs), sum(a for _, a in values))
    return out


def _as_dict(aggregates: pl.DataFrame) -> dict[tuple, tuple]:
    return {
        (r["compressor_id"], r["sensor"], int(r["window_start"].timestamp() * 1_000_000)): (
            r["avg"], r["min"], r["max"], r["stddev"], r["count"], r["anomaly_count"]
        )
        for r in aggregates.iter_rows(named=True)
    }  # fmt: skip


def test_window_rows_match_a_brute_force_reference():
    rows = _readings(3000, seed=1)
    lone = rows.head(1).with_columns(timestamp=pl.lit(T0 + 10 * MIN).cast(TIME))  # a window with one reading
    rows = pl.concat([rows, lone])
    got = _as_dict(aggregate(rows, PROFILE, MIN))
    want = _reference(rows)
    assert got.keys() == want.keys()
    for key, (avg, lo, hi, sd, count, anomalies) in want.items():
        g = got[key]
        assert g[1:3] == (lo, hi) and g[4:] == (count, anomalies), key
        assert g[0] == pytest.approx(avg, rel=1e-12), key
        assert (g[3] is None) == (sd is None) and (sd is None or g[3] == pytest.approx(sd, rel=1e-9, abs=1e-12)), key
    singles = [k for k, v in want.items() if v[4] == 1]
    assert singles and all(got[k][3] is None for k in singles)  # one reading: no sample stddev
    edges = aggregate(rows.head(1).with_columns(timestamp=pl.lit(T0 + MIN - 1).cast(TIME)), PROFILE, MIN)
    assert edges["window_start"].dt.epoch("us").to_list() == [T0] * 6  # the last microsecond is inside
    assert edges["window_end"].dt.epoch("us").to_list() == [T0 + MIN] * 6


def _run(rows: pl.DataFrame, batch_sizes: list[int], counts: dict | None = None) -> pl.DataFrame:
    """Feed `rows` in batches; after each batch close every window the batch's max time (minus 5 s) passed,
    and summarise the slices that ended by the largest time so far (readings arrive up to ~4 s out of order,
    so some join slices summarised already). `counts["stale"]`: readings that did."""
    state = OpenWindows(PROFILE, MIN)
    out, start, marks, watermarks = [], 0, {}, {}
    for size in batch_sizes:
        batch = rows.slice(start, size)
        start += size
        before = batch.with_columns(
            m=pl.col("_partition").replace_strict(marks, default=-(2**62), return_dtype=pl.Int64)
        )
        assert before.filter(pl.col("timestamp").dt.epoch("us") < pl.col("m")).is_empty()  # jitter < grace: none late
        closes = {}
        for (p,), part in batch.partition_by("_partition", as_dict=True).items():
            times = part["timestamp"].dt.epoch("us")
            if counts is not None:
                done = state.summaries.get(int(p), {})
                counts["stale"] = counts.get("stale", 0) + sum(t // state.slice_us in done for t in times)
            watermarks[int(p)] = max(watermarks.get(int(p), -(2**62)), int(times.max()))
            mark = (int(times.max()) - 5_000_000) // MIN * MIN
            if mark > marks.get(p, -(2**62)):
                closes[int(p)] = marks[p] = mark
        staged = state.stage(batch, closes, watermarks)
        state.apply(staged)
        if staged.aggregates is not None:
            out.append(staged.aggregates)
    final = {p: 2**62 // MIN * MIN for p in marks}
    staged = state.stage(rows.clear(), final)
    state.apply(staged)
    out.append(staged.aggregates)
    assert state.size() == 0
    return pl.concat(out).sort("compressor_id", "sensor", "window_start")


def test_window_rows_do_not_depend_on_batching():
    rows = _readings(4000, seed=2)
    one = _run(rows, [rows.height])
    counts: dict = {}
    many = _run(rows, [1, 7, 500, 3, 1200, 289, 2000], counts)
    small = _run(rows, [40] * 100, counts)
    assert small.equals(one)
    assert counts["stale"] > 0  # readings joined summarised slices, which were summarised again
    assert many.height == one.height > 0
    assert many.equals(one)  # exactly: rows are sorted by time within a slice, slices combine in time order
    assert _as_dict(one) == _as_dict(aggregate(rows, PROFILE, MIN))


def test_lookup_tells_redeliveries_from_true_duplicates():
    rows = _readings(200, seed=3)
    state = OpenWindows(PROFILE, MIN)
    state.apply(state.stage(rows, {}))
    again = rows.head(10)  # the same messages (same partition and offset): redelivered
    dups = rows.slice(10, 10).with_columns(pl.col("_offset") + 10_000)  # same keys from other messages
    new = rows.slice(20, 10).with_columns(pl.col("timestamp") + pl.duration(microseconds=1), pl.col("_offset") + 20_000)
    redelivered, duplicate = state.lookup(pl.concat([again, dups, new]))
    assert redelivered.tolist() == [True] * 10 + [False] * 20
    assert duplicate.tolist() == [False] * 10 + [True] * 10 + [False] * 10
    other = dups.with_columns(_partition=(pl.col("_partition") + 1) % 2)  # another partition has its own keys
    assert not np.any(state.lookup(other)[1])
    closed = state.stage(rows.clear(), {0: T0 + 10 * MIN, 1: T0 + 10 * MIN})
    state.apply(closed)
    assert state.size() == 0 and not np.any(state.lookup(dups)[1])  # closed windows are forgotten


def test_a_windows_numbers_do_not_depend_on_what_else_is_aggregated_with_it():
    # a partition may close one asset's window alone or many windows of many assets at once (after a restart,
    # say): the numbers must be the same to the last bit, so no aggregation kernel may depend on the layout
    rows = _readings(3000, seed=4).drop("_partition")
    alone = rows.filter(pl.col("compressor_id") == "COMP-0002")
    together = aggregate(rows, PROFILE, MIN).filter(pl.col("compressor_id") == "COMP-0002")
    assert together.height > 0
    assert aggregate(alone, PROFILE, MIN).sort("sensor", "window_start").equals(together.sort("sensor", "window_start"))
    first = alone.filter(pl.col("timestamp") < pl.lit(T0 + MIN).cast(TIME))
    assert (
        aggregate(first, PROFILE, MIN)
        .sort("sensor")
        .equals(together.filter(pl.col("window_start") == pl.lit(T0).cast(TIME)).sort("sensor"))
    )

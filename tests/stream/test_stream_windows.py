"""Window arithmetic and late routing on frames (no broker): boundaries, watermark carry-over, batching."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl

from altaviz.lake.schema import TIME
from altaviz.stream.validate import closed_mark, route_late

MIN = 60_000_000
T0 = int(datetime(2026, 1, 5, 0, 0, tzinfo=UTC).timestamp() * 1_000_000)  # a minute boundary


def _frame(rows: list[tuple[int, int, int]]) -> pl.DataFrame:
    """(partition, offset, event time us)"""
    p, o, t = zip(*rows, strict=True)
    return pl.DataFrame(
        {
            "_partition": pl.Series(p, dtype=pl.Int32),
            "_offset": pl.Series(o, dtype=pl.Int64),
            "timestamp": pl.Series(t, dtype=pl.Int64).cast(TIME),
        }
    )


def test_closed_mark_at_window_boundaries():
    grace = 5_000_000
    wm = np.array([T0 + MIN + grace - 1, T0 + MIN + grace, T0 + 2 * MIN + grace + 1], dtype=np.int64)
    # the window [T0, T0+1m) closes exactly when the watermark reaches its end plus the grace
    assert closed_mark(wm, MIN, grace).tolist() == [T0, T0 + MIN, T0 + 2 * MIN]


def test_late_is_decided_message_by_message_within_a_batch():
    grace = 5_000_000
    rows = [
        (0, 0, T0 + 10_000_000),  # window T0
        (0, 1, T0 + MIN + 3_000_000),  # watermark 1m03s: T0 still open (grace)
        (0, 2, T0 + 59_000_000),  # out of order, within grace -> on time
        (0, 3, T0 + MIN + 6_000_000),  # watermark 1m06s: window T0 closes
        (0, 4, T0 + 59_999_999),  # last microsecond of window T0 -> late
        (0, 5, T0 + MIN),  # first microsecond of the next window -> on time
    ]
    ok, late, after = route_late(_frame(rows), {}, MIN, grace, "timestamp")
    assert late["_offset"].to_list() == [4]
    assert late["_reason"].to_list() == ["late"]
    assert ok["_offset"].to_list() == [0, 1, 2, 3, 5]
    assert after == {0: T0 + MIN + 6_000_000}


def test_partitions_have_their_own_watermarks_and_carry_them_over():
    grace = 0
    rows = [(0, 0, T0 + 5 * MIN), (1, 0, T0 + 10_000_000)]
    ok, late, after = route_late(_frame(rows), {1: T0 + 30_000_000}, MIN, grace, "timestamp")
    assert late.height == 0  # partition 0 racing ahead does not make partition 1 late
    assert after == {0: T0 + 5 * MIN, 1: T0 + 30_000_000}  # the watermark never goes back
    ok, late, _ = route_late(_frame([(0, 1, T0 + 4 * MIN + 59_000_000)]), after, MIN, grace, "timestamp")
    assert late["_offset"].to_list() == [1]


def test_batching_does_not_change_the_decisions():
    rng = np.random.default_rng(7)
    t = T0 + np.cumsum(rng.integers(0, 4_000_000, 300)) - rng.integers(0, 20_000_000, 300)
    rows = [(0, i, int(x)) for i, x in enumerate(t)]
    _, late_once, wm_once = route_late(_frame(rows), {}, MIN, 5_000_000, "timestamp")
    marks: dict[int, int | None] = {}
    late_parts = []
    for lo in range(0, 300, 37):
        _, late, marks = route_late(_frame(rows[lo : lo + 37]), marks, MIN, 5_000_000, "timestamp")
        late_parts += late["_offset"].to_list()
    assert late_once.height > 0
    assert late_parts == late_once["_offset"].to_list()
    assert marks == wm_once

"""Rolling mean and sample std over time windows that are bit-for-bit reproducible under day partitioning.

Incremental rolling kernels carry floating-point state from wherever a pass starts, so features of a day would
differ in the last bits depending on how many days one pass covered. Here every sum is built from prefix sums
that restart at each (asset, day) segment: the value for a reading depends only on the readings of its own day
and the days its window reaches into, in a fixed order of additions — so day-by-day processing equals one pass
exactly. Values are centred on a constant from the profile before squaring, which keeps the variance accurate.
"""

from __future__ import annotations

import numpy as np
import polars as pl

_US = 1_000_000


class WindowIndex:
    """Row positions of each reading's window (t - w, t] in a frame sorted by asset, then time."""

    def __init__(self, frame: pl.DataFrame, asset: str, time: str, out: np.ndarray | None = None) -> None:
        """`out`: boolean mask of the rows whose windows are wanted (all rows when None)."""
        self.asset = frame.get_column(asset).rle_id().to_numpy().astype(np.int64)
        self.segment = (
            frame.select(pl.struct(asset, pl.col(time).dt.date()).rle_id()).to_series().to_numpy().astype(np.int64)
        )
        t = frame.get_column(time).dt.epoch("us").to_numpy()
        self.t0 = int(t.min()) if t.size else 0
        self.span = (int(t.max()) - self.t0 + 40 * 86_400 * _US) if t.size else 1
        self.key = self.asset * self.span + (t - self.t0)
        self.rows = np.arange(len(t)) if out is None else np.flatnonzero(out)
        first = np.flatnonzero(np.diff(self.segment, prepend=-1))
        self.segment_first = first  # first row of each segment
        self.segment_last = np.append(first[1:] - 1, len(t) - 1)
        self._plans: dict[int, _WindowPlan] = {}

    def start(self, seconds: int) -> np.ndarray:
        """Index of the first reading inside (t - w, t] for every row."""
        return self.plan(seconds).start

    def plan(self, seconds: int) -> _WindowPlan:
        if seconds not in self._plans:
            self._plans[seconds] = _WindowPlan(self, seconds)
        return self._plans[seconds]


class _WindowPlan:
    """Gather indices of one window length, computed once and shared by every sensor."""

    def __init__(self, index: WindowIndex, seconds: int) -> None:
        rows = index.rows
        j = np.searchsorted(index.key, index.key[rows] - seconds * _US, side="right")
        seg_j, seg_i = index.segment[j], index.segment[rows]
        self.start = j
        self.before = np.maximum(j - 1, 0)
        self.has_before = j > index.segment_first[seg_j]
        self.last_of_j = index.segment_last[seg_j]
        self.same = seg_j == seg_i
        gap = seg_i - seg_j - 1
        self.middle = [
            (gap >= m, np.minimum(seg_j + m, len(index.segment_last) - 1))
            for m in range(1, int(gap.max()) + 1 if gap.size else 1)
        ]
        self.segment_last = index.segment_last
        self.count = (rows - j + 1).astype(np.float64)
        self.rows = rows


def window_sums(index: WindowIndex, seconds: int, prefix: np.ndarray) -> np.ndarray:
    """Sum over each row's window, from per-segment prefix sums (cumulative sums restarting each segment).

    Same segment: prefix[i] - prefix[j-1]. Window reaching back into earlier segments (days): the rest of j's
    segment, then whole segments in between, then prefix[i] — always added in that order.
    """
    p = index.plan(seconds)
    before = np.where(p.has_before, prefix[p.before], 0.0)
    across = prefix[p.last_of_j] - before
    if p.middle:
        seg_totals = prefix[p.segment_last]
        for inside, seg in p.middle:
            across = across + np.where(inside, seg_totals[seg], 0.0)
    at_i = prefix[p.rows]
    return np.where(p.same, at_i - before, across + at_i)


class Moments:
    """Per-segment prefix sums of a centred sensor and its square, shared by every window length."""

    def __init__(self, x: np.ndarray, centre: float, index: WindowIndex) -> None:
        c = x - centre
        prefixes = pl.DataFrame({"a": c, "b": c * c, "s": index.segment}).select(
            pl.col("a").cum_sum().over("s"), pl.col("b").cum_sum().over("s")
        )
        self.centre = centre
        self.prefix = prefixes.get_column("a").to_numpy()
        self.prefix_sq = prefixes.get_column("b").to_numpy()


def mean_and_std(
    moments: Moments, index: WindowIndex, seconds: int, flat: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Window mean and sample std (ddof=1; NaN below two readings; 0 where `flat` says min == max)."""
    centre = moments.centre
    s = window_sums(index, seconds, moments.prefix)
    ss = window_sums(index, seconds, moments.prefix_sq)
    n = index.plan(seconds).count
    mean = s / n + centre
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.maximum(ss - s * s / n, 0.0) / (n - 1)
    std = np.where(n >= 2, np.sqrt(var), np.nan)
    if flat is not None:
        std = np.where(flat & (n >= 2), 0.0, std)
    return mean, std

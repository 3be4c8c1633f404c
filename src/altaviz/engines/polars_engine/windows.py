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
        self.few = self.count < 2
        self.rows = rows
        # for window_sums: prefix index just before the window in j's segment, or the zero sentinel at n
        self.before_or_zero = np.where(self.has_before, j - 1, len(index.key))
        # rows whose window reaches back into earlier segments, and for those the whole segments in between
        self.cross = np.flatnonzero(~self.same)
        self.cross_last = self.last_of_j[self.cross]
        gap_c = gap[self.cross]
        self.cross_middle = [
            (np.flatnonzero(gap_c >= m), index.segment_last[seg_j[self.cross][gap_c >= m] + m])
            for m in range(1, int(gap_c.max()) + 1 if gap_c.size else 1)
        ]


def window_sums(index: WindowIndex, seconds: int, prefix: np.ndarray, at_i: np.ndarray | None = None) -> np.ndarray:
    """Sum over each row's window, from per-segment prefix sums (cumulative sums restarting each segment).

    `prefix` has one entry per row plus a trailing 0.0 (the sentinel `segment_prefixes` appends); `at_i` is
    `prefix[index.rows]` when the caller has it. Same segment: prefix[i] - prefix[j-1]. Window reaching back into
    earlier segments (days): the rest of j's segment, then whole segments in between, then prefix[i] - always
    added in that order.
    """
    p = index.plan(seconds)
    before = prefix[p.before_or_zero]
    if at_i is None:
        at_i = prefix[p.rows]
    out = at_i - before
    if p.cross.size:
        across = prefix[p.cross_last] - before[p.cross]
        for inside, seg_last in p.cross_middle:
            across[inside] += prefix[seg_last]
        out[p.cross] = across + at_i[p.cross]
    return out


def segment_prefixes(
    frame: pl.DataFrame, centres: dict[str, pl.Expr], index: WindowIndex
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per sensor, the per-segment prefix sums of (x - centre) and (x - centre)^2, plus a trailing 0.0 sentinel.

    A centre is a constant or an expression that is constant per asset (e.g. a multiple of rated horsepower), so
    it is constant inside every window and `mean = sum / n + centre` holds.
    """
    exprs = []
    for name, centre in centres.items():
        c = pl.col(name) - centre
        exprs += [
            c.cum_sum().over("_segment").alias(f"{name}:1"),
            (c * c).cum_sum().over("_segment").alias(f"{name}:2"),
        ]
    sums = frame.with_columns(_segment=pl.Series(index.segment)).select(exprs)
    sentinel = pl.DataFrame([pl.Series(c, [0.0], pl.Float64) for c in sums.columns])
    sums = pl.concat([sums.cast(pl.Float64), sentinel], rechunk=True)
    return {
        name: (sums.get_column(f"{name}:1").to_numpy(), sums.get_column(f"{name}:2").to_numpy()) for name in centres
    }


def mean_and_std(
    prefix: tuple[np.ndarray, np.ndarray],
    centre: float | np.ndarray,  # per output row, or a constant
    index: WindowIndex,
    seconds: int,
    flat: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Window mean and sample std (ddof=1; NaN below two readings; 0 where `flat`: no change in the window)."""
    p = index.plan(seconds)
    s = window_sums(index, seconds, prefix[0])
    ss = window_sums(index, seconds, prefix[1])
    n = p.count
    mean = s / n
    mean += centre
    var = s * s
    var /= n
    np.subtract(ss, var, out=var)
    np.maximum(var, 0.0, out=var)
    with np.errstate(invalid="ignore", divide="ignore"):
        var /= n - 1
    std = np.sqrt(var, out=var)
    std[p.few] = np.nan
    if flat is not None:
        std[flat & ~p.few] = 0.0
    return mean, std


def window_maxima(x: np.ndarray, index: WindowIndex, windows: list[int]) -> dict[int, np.ndarray]:
    """Max over each wanted row's window (t - w, t] for every window length in `windows` (NaN ignored; NaN where
    the window holds no value). Exact: a sparse table of maxima over power-of-two spans, built once per series
    and shared by all windows; a window [j, i] is the max of two (overlapping) spans that lie inside it."""
    plans = {w: index.plan(w) for w in windows}
    n = len(x)
    if n == 0 or len(index.rows) == 0:
        return {w: np.empty(0) for w in windows}
    counts = {w: p.rows - p.start + 1 for w, p in plans.items()}
    levels = max(int(c.max()) for c in counts.values()).bit_length()  # spans 1, 2, ..., 2**(levels-1)
    table = np.empty((levels, n), dtype=x.dtype)
    table[0] = x
    for k in range(1, levels):
        h = 1 << (k - 1)
        np.fmax(table[k - 1, : n - h], table[k - 1, h:], out=table[k, : n - h])
        table[k, n - h :] = table[k - 1, n - h :]
    flat = table.ravel()
    out = {}
    for w, p in plans.items():
        k = np.frexp(counts[w])[1].astype(np.int64) - 1  # floor(log2(count)), exact for integers
        base = k * n
        out[w] = np.fmax(flat[base + p.start], flat[base + p.rows - (np.int64(1) << k) + 1])
    return out


def change_prefix(x: np.ndarray, index: WindowIndex) -> np.ndarray:
    """Integer prefix count of value changes (a new asset counts as a change): exact, order-independent."""
    changed = np.ones(len(x), dtype=np.int64)
    if len(x) > 1:
        changed[1:] = (x[1:] != x[:-1]) | (index.asset[1:] != index.asset[:-1])
    return np.cumsum(changed)


def flat_in_window(
    prefix: np.ndarray, index: WindowIndex, seconds: int, same_segment: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(value unchanged over the whole window, readings in the window) per wanted row.

    `same_segment` clips windows at the start of the row's (asset, day) segment.
    """
    p = index.plan(seconds)
    j = p.start
    if same_segment:
        j = np.maximum(j, index.segment_first[index.segment[p.rows]])
    return prefix[p.rows] == prefix[j], p.rows - j + 1

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


def sort_by_asset_time(frame: pl.DataFrame, asset: str, time: str) -> pl.DataFrame:
    """`frame.sort(asset, time)` through one Int64 key (asset rank x time span + time offset): the same order
    (ranks follow the assets' sort order) at about half the cost of a String + Datetime sort. Falls back to the
    two-column sort for nulls or a key that would not fit in 62 bits."""
    ids, ts = frame.get_column(asset), frame.get_column(time)
    if frame.height < 2 or ids.null_count() or ts.null_count():
        return frame.sort(asset, time)
    ticks = ts.to_physical().cast(pl.Int64)  # in the column's own unit (epoch("us") would merge ns ticks)
    lo, hi = int(ticks.min()), int(ticks.max())  # type: ignore[arg-type]
    ranks = ids.rank("dense")
    if int(ranks.max()) * (hi - lo + 1) >= 1 << 62:  # type: ignore[arg-type]
        return frame.sort(asset, time)
    key = (ranks.cast(pl.Int64) - 1) * (hi - lo + 1) + (ticks - lo)
    return frame.with_columns(key.alias("_sort_key")).sort("_sort_key").drop("_sort_key")


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
        self._grid: tuple[int, np.ndarray] | None | bool = False  # False: not worked out yet

    def grid(self) -> tuple[int, np.ndarray] | None:
        """(longest segment L, each row's cell in a segments x L grid, row-major), or None when that grid would
        be mostly padding (a few segments much longer than the rest). Segmented running sums run on it as one
        NumPy cumsum along the rows."""
        if self._grid is False:
            n = len(self.segment)
            lengths = self.segment_last - self.segment_first + 1
            longest = int(lengths.max()) if n else 0
            if n and len(lengths) * longest <= 4 * n + 65_536:
                pos = np.arange(n) - self.segment_first[self.segment]
                self._grid = (longest, self.segment * longest + pos)
            else:
                self._grid = None
        return self._grid  # type: ignore[return-value]

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
        has_before = j > index.segment_first[seg_j]
        self.count = (rows - j + 1).astype(np.float64)
        self.few = self.count < 2
        self.rows = rows
        # for window_sums: prefix index just before the window in j's segment, or the zero sentinel at n
        self.before_or_zero = np.where(has_before, j - 1, len(index.key))
        # rows whose window reaches back into earlier segments, and for those the whole segments in between
        self.cross = np.flatnonzero(seg_j != seg_i)
        self.cross_last = index.segment_last[seg_j[self.cross]]
        gap_c = (seg_i - seg_j - 1)[self.cross]
        self.cross_middle = [
            (np.flatnonzero(gap_c >= m), index.segment_last[seg_j[self.cross][gap_c >= m] + m])
            for m in range(1, int(gap_c.max()) + 1 if gap_c.size else 1)
        ]
        self.n = len(index.key)
        self._spans: tuple[int, np.ndarray, np.ndarray] | None = None

    def span_index(self) -> tuple[int, np.ndarray, np.ndarray]:
        """For `window_maxima`: (levels needed, flat positions of the two power-of-two spans covering each
        window in a table with one column per row of the frame). The same for every sensor, so computed once."""
        if self._spans is None:
            n = self.n
            counts = self.rows - self.start + 1
            k = np.frexp(counts)[1].astype(np.int64) - 1  # floor(log2(count)), exact for integers
            base = k * n
            levels = int(k.max()) + 1 if k.size else 1
            self._spans = (levels, base + self.start, base + self.rows - (np.int64(1) << k) + 1)
        return self._spans


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
    it is constant inside every window and `mean = sum / n + centre` holds. Sums are sequential from each
    segment's first row; a missing value is NaN at its row and adds nothing (Polars' `cum_sum` of a null).
    """
    grid = index.grid()
    if grid is None:  # segments of very different lengths: Polars' grouped cum_sum instead of a padded grid
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
    centred = frame.select((pl.col(name) - centre).cast(pl.Float64).alias(name) for name, centre in centres.items())
    longest, cell = grid
    table = np.zeros((int(cell[-1]) // longest + 1, longest))  # one grid for all the columns (see _grid_cumsum)
    out = {}
    for name in centres:
        c = centred.get_column(name).to_numpy()  # nulls become NaN
        out[name] = (_grid_cumsum(c, cell, table), _grid_cumsum(c * c, cell, table))
    return out


def _grid_cumsum(values: np.ndarray, cell: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Running sums restarting at each segment (see `WindowIndex.grid`), NaN kept at NaN rows, + a 0.0 sentinel.
    Each grid row is summed left to right, the order of a sequential per-segment scan, so the sums are
    bit-identical to it. Cells after a segment's last row (padding, or what an earlier column left there) come
    after every cell of that segment and are never read back."""
    n = len(values)
    missing = np.isnan(values)
    any_missing = bool(missing.any())
    flat = table.ravel()
    flat[cell] = np.where(missing, 0.0, values) if any_missing else values
    np.cumsum(table, axis=1, out=table)
    out = np.empty(n + 1)
    np.take(flat, cell, out=out[:n])
    if any_missing:
        out[:n][missing] = np.nan
    out[n] = 0.0
    return out


def mean_and_std(
    prefix: tuple[np.ndarray, np.ndarray],
    centre: float | np.ndarray,  # per output row, or a constant
    index: WindowIndex,
    seconds: int,
    flat: np.ndarray | None = None,
    at_rows: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Window mean and sample std (ddof=1; NaN below two readings; 0 where `flat`: no change in the window).
    `at_rows`: both prefixes at `index.rows`, when the caller has them (they are the same for every window)."""
    p = index.plan(seconds)
    s = window_sums(index, seconds, prefix[0], None if at_rows is None else at_rows[0])
    ss = window_sums(index, seconds, prefix[1], None if at_rows is None else at_rows[1])
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


def window_maxima(
    x: np.ndarray, index: WindowIndex, windows: list[int], scratch: np.ndarray | None = None
) -> dict[int, np.ndarray]:
    """Max over each wanted row's window (t - w, t] for every window length in `windows` (NaN ignored; NaN where
    the window holds no value). Exact: a sparse table of maxima over power-of-two spans, built once per series
    and shared by all windows; a window [j, i] is the max of two (overlapping) spans that lie inside it.

    `scratch`: a 1-D buffer of x's dtype to build the table in when it is large enough (a fresh table of
    levels x n values costs more in page faults than in computing it)."""
    n = len(x)
    if n != len(index.key):
        raise ValueError(f"window_maxima: expected one value per row of the index ({len(index.key)}), got {n}")
    if n == 0 or len(index.rows) == 0:
        return {w: np.empty(0) for w in windows}
    spans = {w: index.plan(w).span_index() for w in windows}
    levels = max(s[0] for s in spans.values())  # spans 1, 2, ..., 2**(levels-1)
    if scratch is not None and scratch.dtype == x.dtype and scratch.size >= levels * n:
        table = scratch[: levels * n].reshape(levels, n)
    else:
        table = np.empty((levels, n), dtype=x.dtype)
    table[0] = x
    for k in range(1, levels):
        h = 1 << (k - 1)
        np.fmax(table[k - 1, : n - h], table[k - 1, h:], out=table[k, : n - h])
        table[k, n - h :] = table[k - 1, n - h :]
    flat = table.ravel()
    return {w: np.fmax(flat[first], flat[second]) for w, (_, first, second) in spans.items()}


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

"""From the grid to the emitted rows: structural faults, file routing and row order.

Rows are routed to a file by (file date, host asset): the file date is the UTC date of the timestamp except
for late rows (a later day's file); the host is the asset itself except for unknown-asset rows, which ride in
the file of the asset they were cloned from. The grid's flat order is already (date, asset, time); the rows
that break it ("specials") are inserted at their place:

- out-of-order: a row moves 1-6 readings later, always past the next reading of its asset (so it is exactly
  one row whose timestamp is below the running maximum of the earlier rows of its asset in that file)
- duplicates: an exact copy lands up to 36 readings later in the same file
- unknown-asset and future-timestamp clones follow the row they were cloned from
- late rows go to the end of their asset's block in a later day's file
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from altaviz.simulate.faults import DUP, FUTURE, LATE, MALFORMED, OOO, UNKNOWN
from altaviz.simulate.fleet import Fleet
from altaviz.simulate.grid import Grid

MAX_SHIFT = 6  # out-of-order rows move at most this many readings
MAX_DUP_GAP = 36  # duplicates land at most this many readings after the original


@dataclass
class Assembled:
    readings: pl.DataFrame
    routing: pl.DataFrame
    counts: dict[str, int]


@dataclass
class _Specials:
    src: list[np.ndarray]  # grid cell the values come from
    anchor: list[np.ndarray]  # inserted after every regular row up to this grid cell
    key: list[np.ndarray]  # order among specials with the same anchor position
    code: list[np.ndarray]  # asset id index (>= assets: unknown ids)
    host: list[np.ndarray]
    file_day: list[np.ndarray]
    ts: list[np.ndarray]

    def add(self, *columns: np.ndarray) -> None:
        """Append one batch: src, anchor, key, code, host, file_day, ts (in that order)."""
        for name, value in zip(("src", "anchor", "key", "code", "host", "file_day", "ts"), columns, strict=True):
            getattr(self, name).append(np.asarray(value, dtype=np.int64))

    def cat(self, name: str) -> np.ndarray:
        return np.concatenate(getattr(self, name)) if getattr(self, name) else np.zeros(0, dtype=np.int64)


def assemble(
    signals: dict[str, np.ndarray],
    decimals: dict[str, int],
    kind: np.ndarray,
    alive: np.ndarray,
    grid: Grid,
    fleet: Fleet,
    parts: np.ndarray,
    future_us: tuple[int, int],
    id_column: str,
    time_column: str,
    rng: np.random.Generator,
) -> Assembled:
    days, n_assets, slots = grid.shape
    last = grid.day_length() - 1  # last slot of each day
    epoch_us = grid.epoch_us()

    def cell(d: np.ndarray, a: np.ndarray, s: np.ndarray) -> np.ndarray:
        return (d * n_assets + a) * slots + s

    # out-of-order rows need the next reading of their asset to stay in place; late rows need a later day
    nxt_ok = np.zeros(alive.shape, dtype=bool)
    nxt_ok[:, :, :-1] = alive[:, :, 1:] & (kind[:, :, 1:] != OOO) & (kind[:, :, 1:] != LATE)
    kind[(kind == OOO) & ~nxt_ok] = 0
    kind[-1][kind[-1] == LATE] = 0
    regular = (alive & (kind != OOO) & (kind != LATE)).ravel()
    before = np.cumsum(regular, dtype=np.int64)  # regular rows up to and including each cell

    flat_kind = kind.ravel()
    marked = np.flatnonzero((flat_kind >= DUP) & (flat_kind <= FUTURE))
    marked_kind = flat_kind[marked]

    def where(code: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(day, asset, slot) of the cells with this fault code, in grid order."""
        idx = marked[marked_kind == code].astype(np.int64)
        day, rest = np.divmod(idx, n_assets * slots)
        asset, slot = np.divmod(rest, slots)
        return day, asset, slot

    sp = _Specials([], [], [], [], [], [], [])
    d, a, s = where(OOO)  # sorted by (day, asset, slot)
    shift = np.minimum(rng.integers(1, MAX_SHIFT + 1, s.size), last[d] - s)
    if s.size > 1:
        same = (d[1:] == d[:-1]) & (a[1:] == a[:-1])
        shift[:-1] = np.where(same, np.minimum(shift[:-1], s[1:] - s[:-1] - 1), shift[:-1])
    sp.add(cell(d, a, s), cell(d, a, s + shift), (s + shift) * 4 + 2, a, a, d, epoch_us[d, s])
    n_ooo = s.size

    d, a, s = where(LATE)
    f = np.minimum(d + 1 + (rng.random(s.size) < 0.2), days - 1)
    sp.add(cell(d, a, s), cell(f, a, last[f]), 4 * slots + 4 * s, a, a, f, epoch_us[d, s])
    n_late = s.size

    d, a, s = where(DUP)
    gap = np.minimum(rng.integers(0, MAX_DUP_GAP + 1, s.size), last[d] - s)
    sp.add(cell(d, a, s), cell(d, a, s + gap), (s + gap) * 4 + 3, a, a, d, epoch_us[d, s])
    n_dup = s.size

    d, a, s = where(UNKNOWN)
    code = n_assets + rng.integers(0, len(fleet.unknown_ids), s.size)
    sp.add(cell(d, a, s), cell(d, a, s), s * 4 + 1, code, a, d, epoch_us[d, s])
    n_unk = s.size

    d, a, s = where(FUTURE)
    lo, hi = future_us
    ts = lo + (rng.random(s.size) * (hi - lo)).astype(np.int64) // 1_000_000 * 1_000_000
    sp.add(cell(d, a, s), cell(d, a, s), s * 4 + 1, a, a, d, ts)
    n_fut = s.size

    malformed = np.zeros(grid.size, dtype=np.uint8)
    bad = marked[marked_kind == MALFORMED]
    malformed[bad] = rng.integers(1, 4, bad.size)

    pos = before[sp.cat("anchor")]
    order = np.lexsort((sp.cat("key"), sp.cat("host"), sp.cat("file_day"), pos))
    n_sp = order.size
    final_sp = pos[order] + np.arange(n_sp)
    n_rows = int(before[-1]) + n_sp if before.size else n_sp
    take = np.empty(n_rows, dtype=np.int64)
    is_regular = np.ones(n_rows, dtype=bool)
    is_regular[final_sp] = False
    take[is_regular] = np.flatnonzero(regular)
    take[final_sp] = grid.size + np.arange(n_sp)

    asset_grid = np.broadcast_to(np.arange(n_assets, dtype=np.int32)[None, :, None], grid.shape).ravel()
    src = sp.cat("src")[order]
    columns = {
        "code": [asset_grid, sp.cat("code")[order].astype(np.int32)],
        "host": [asset_grid, sp.cat("host")[order].astype(np.int32)],
        "ts": [np.broadcast_to(epoch_us[:, None, :], grid.shape).ravel(), sp.cat("ts")[order]],
        "file_day": [
            np.broadcast_to(np.arange(days, dtype=np.int32)[:, None, None], grid.shape).ravel(),
            sp.cat("file_day")[order].astype(np.int32),
        ],
        "malformed": [malformed, np.zeros(n_sp, dtype=np.uint8)],
    }
    for name, x in signals.items():
        flat = x.ravel()
        columns[name] = [flat, flat[src]]
    frame = pl.concat(
        [
            pl.DataFrame({k: v[0] for k, v in columns.items()}),
            pl.DataFrame({k: v[1] for k, v in columns.items()}),
        ],
        rechunk=False,
    ).gather(pl.Series(take))

    names = pl.Series([*fleet.ids, *fleet.unknown_ids], dtype=pl.String)
    readings = frame.select(
        names.gather(frame["code"]).alias(id_column),
        pl.col("ts").cast(pl.Datetime("us", "UTC")).alias(time_column),
        *[
            pl.when(pl.col(n).is_nan())
            .then(None)
            .otherwise(pl.col(n).cast(pl.Float64).round(decimals.get(n, 3)))
            .alias(n)
            for n in signals
        ],
    )
    routing = frame.select(
        (pl.col("file_day") + grid.first_day).cast(pl.Date).alias("file_date"),
        pl.col("host"),
        pl.Series(parts.astype(np.int32)).gather(frame["host"]).alias("part"),
        pl.col("malformed"),
    )
    counts = {
        "duplicates": n_dup,
        "out_of_order": n_ooo,
        "late": n_late,
        "unknown_assets": n_unk,
        "future": n_fut,
        "malformed": int(bad.size),
    }
    return Assembled(readings, routing, {k: int(v) for k, v in counts.items()})

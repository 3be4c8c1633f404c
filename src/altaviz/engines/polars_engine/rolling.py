"""Time-based rolling aggregates per group, aligned row-for-row with the input frame."""

from __future__ import annotations

import polars as pl


def rolling_aligned(
    frame: pl.DataFrame, *, time: str, group_by: list[str], period_s: int, aggs: list[pl.Expr]
) -> pl.DataFrame:
    """Aggregates over (t - period, t] per group, one output row per input row in input order.

    `frame` must be sorted by `group_by` then `time` with unique (group, time) keys. Polars' rolling context keeps
    that order; this is checked (cheaply) and a join restores alignment if a future Polars changes it.
    """
    keys = [*group_by, time]
    rolled = (
        frame.select(*keys, *{c for a in aggs for c in a.meta.root_names()} - set(keys))
        .rolling(index_column=time, period=f"{period_s}s", closed="right", group_by=group_by)
        .agg(aggs)
    )
    aligned = rolled.height == frame.height and all(rolled.get_column(k).equals(frame.get_column(k)) for k in keys)
    if not aligned:
        rolled = frame.select(keys).join(rolled, on=keys, how="left", maintain_order="left")
    return rolled.drop(keys)

"""The NumPy window kernels against a brute-force loop on random, irregular, multi-asset, multi-day series."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from altaviz.engines.polars_engine.windows import WindowIndex, segment_prefixes, sort_by_asset_time, window_maxima


def _series(seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for asset in ("A", "B", "C"):
        n = int(rng.integers(1, 400))
        # irregular steps: mostly 10 min, some bursts of seconds, some gaps of hours (longer than windows)
        steps = rng.choice([600, 600, 600, 5, 7200, 30_000], size=n)
        t = np.cumsum(steps) * 1_000_000 + 1_700_000_000_000_000
        x = rng.normal(50, 10, n)
        x[rng.random(n) < 0.05] = np.nan  # missing values are skipped by max
        frames.append(pl.DataFrame({"asset": [asset] * n, "ts": t, "x": x}))
    frame = pl.concat(frames).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    return frame.sort("asset", "ts")


def _brute_max(frame: pl.DataFrame, seconds: int, rows: np.ndarray) -> np.ndarray:
    asset = frame.get_column("asset").to_list()
    t = frame.get_column("ts").dt.epoch("us").to_numpy()
    x = frame.get_column("x").to_numpy()
    out = np.full(len(rows), np.nan)
    for k, i in enumerate(rows):
        inside = [j for j in range(i + 1) if asset[j] == asset[i] and t[i] - seconds * 1_000_000 < t[j]]
        values = [x[j] for j in inside if not np.isnan(x[j])]
        out[k] = max(values) if values else np.nan
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_window_maxima_equal_brute_force(seed):
    frame = _series(seed)
    rng = np.random.default_rng(seed + 100)
    wanted = rng.random(frame.height) < 0.5
    index = WindowIndex(frame, "asset", "ts", wanted)
    windows = [3600, 4 * 3600, 86_400]
    got = window_maxima(frame.get_column("x").to_numpy(), index, windows)
    for w in windows:
        expected = _brute_max(frame, w, index.rows)
        np.testing.assert_array_equal(got[w], expected)


def test_window_minima_by_negation():
    frame = _series(4)
    index = WindowIndex(frame, "asset", "ts")
    x = frame.get_column("x").to_numpy()
    lowest = -window_maxima(-x, index, [3600])[3600]
    negated = frame.with_columns(pl.col("x") * -1)
    np.testing.assert_array_equal(lowest, -_brute_max(negated, 3600, index.rows))


def test_window_maxima_empty_selection():
    frame = _series(5)
    index = WindowIndex(frame, "asset", "ts", np.zeros(frame.height, dtype=bool))
    assert window_maxima(frame.get_column("x").to_numpy(), index, [3600])[3600].shape == (0,)


def test_window_maxima_in_a_reused_scratch_buffer():
    frame = _series(6)
    index = WindowIndex(frame, "asset", "ts")
    x = frame.get_column("x").to_numpy().astype(np.float32)
    windows = [3600, 86_400]
    scratch = np.full(20 * frame.height, np.float32(1e30))  # stale content from an earlier use
    got = window_maxima(x, index, windows, scratch)
    fresh = window_maxima(x, index, windows)
    for w in windows:
        np.testing.assert_array_equal(got[w], fresh[w])
        np.testing.assert_array_equal(got[w], _brute_max(frame.with_columns(pl.Series("x", x)), w, index.rows))


def _scan_prefixes(frame: pl.DataFrame, index: WindowIndex, centre: float) -> tuple[np.ndarray, np.ndarray]:
    """The reference, one reading at a time: running sums restarting at every (asset, day) segment; a missing
    value is NaN at its row and adds nothing."""
    x = frame.get_column("x").to_list()
    out = (np.empty(len(x) + 1), np.empty(len(x) + 1))
    s1 = s2 = 0.0
    for i, v in enumerate(x):
        if i == 0 or index.segment[i] != index.segment[i - 1]:
            s1 = s2 = 0.0
        if v is None:
            out[0][i] = out[1][i] = np.nan
            continue
        c = v - centre
        s1 += c
        s2 += c * c
        out[0][i], out[1][i] = s1, s2
    out[0][-1] = out[1][-1] = 0.0
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_segment_prefixes_bit_identical_to_a_sequential_scan(seed):
    """The padded-grid cumsum must give exactly the sums of a sequential scan restarting at every (asset, day):
    that is what makes day-by-day gold equal one pass, and what the Spark engine reproduces."""
    frame = _series(seed).with_columns(pl.col("x").fill_nan(None))  # silver has nulls, never NaN
    index = WindowIndex(frame, "asset", "ts")
    assert index.grid() is not None
    got = segment_prefixes(frame, {"x": pl.lit(48.5)}, index)["x"]
    for g, want in zip(got, _scan_prefixes(frame, index, 48.5), strict=True):
        np.testing.assert_array_equal(g, want)
    assert np.isnan(got[0]).sum() == frame.get_column("x").null_count() > 0


def test_segment_prefixes_fallback_for_uneven_segments():
    """One (asset, day) with far more readings than the others: the grid would be mostly padding, so the
    grouped scan runs instead, with the same sums."""
    dense = pl.DataFrame(
        {"asset": ["A"] * 5000, "ts": 1_700_000_000_000_000 + np.arange(5000) * 1_000_000, "x": np.arange(5000.0)}
    )
    sparse = _series(7).filter(pl.col("asset") != "A").select("asset", pl.col("ts").dt.epoch("us"), "x")
    frame = pl.concat([dense, sparse]).sort("asset", "ts")
    frame = frame.with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")), pl.col("x").fill_nan(None))
    index = WindowIndex(frame, "asset", "ts")
    assert index.grid() is None
    got = segment_prefixes(frame, {"x": pl.lit(1.0)}, index)["x"]
    for g, want in zip(got, _scan_prefixes(frame, index, 1.0), strict=True):
        np.testing.assert_array_equal(g, want)


@pytest.mark.parametrize("unit", ["us", "ns"])
def test_sort_by_asset_time_equals_the_two_column_sort(unit):
    rng = np.random.default_rng(8)
    n = 5000
    ticks = {"us": 1, "ns": 1000}[unit]
    frame = pl.DataFrame(
        {
            "asset": rng.choice(["COMP-0010", "COMP-0002", "B", "COMP-0001", "é"], n),
            # before and after 1970, with sub-microsecond steps in the ns case
            "ts": rng.integers(-900_000_000_000_000 * ticks, 900_000_000_000_000 * ticks, n),
            "v": np.arange(n),
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime(unit, "UTC")))
    frame = frame.unique(["asset", "ts"], keep="first")  # silver keys are unique
    assert sort_by_asset_time(frame, "asset", "ts").equals(frame.sort("asset", "ts"))
    near = frame.head(4).with_columns(  # times within one microsecond must still be ordered (ns)
        pl.Series("ts", [10_000_500, 10_000_100, 10_000_900, 10_000_300]).cast(pl.Datetime(unit, "UTC")),
        pl.lit("A").alias("asset"),
    )
    assert sort_by_asset_time(near, "asset", "ts").equals(near.sort("asset", "ts"))


def test_sort_by_asset_time_falls_back_when_the_key_would_overflow():
    frame = pl.DataFrame(
        {"asset": ["b", "a", "b", "a"], "ts": [2**61, -(2**61), 0, 5], "v": [0, 1, 2, 3]}
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    assert sort_by_asset_time(frame, "asset", "ts").get_column("v").to_list() == [1, 3, 2, 0]

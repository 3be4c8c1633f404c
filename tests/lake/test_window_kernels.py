"""The NumPy window kernels against a brute-force loop on random, irregular, multi-asset, multi-day series."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from altaviz.engines.polars_engine.windows import WindowIndex, window_maxima


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

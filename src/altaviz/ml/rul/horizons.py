"""Failure-within-horizon probabilities from a gradient-boosted classifier over a window's latest step.

One multi-class HistGradientBoostingClassifier puts each row's remaining life in a bucket: within the first
horizon, between the first and the second, ..., beyond the last. P(rul <= h) is the sum of the buckets up to h, so
the horizons' probabilities are monotone by construction. It reads the same inputs as the sequence network (the
last step of its window); the network still predicts the RUL in days. On simulated fleets it separated the
7-day boundary far better than the network's own failure heads over the same inputs (held-out F1 7d
0.848 / 0.858 / 0.763 -> 0.929 / 0.923 / 0.847 on simulator seeds 11 / 12 / 13, docs/rul.md): the network
overfits the training assets within a few epochs, and the trees read absolute levels and single-input thresholds
directly.

Exported to ONNX with skl2onnx (probabilities as a plain tensor, no ZipMap) and served with ONNX Runtime."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from altaviz.ml.rul.errors import RulDataError

ONNX_FILE = "rul_horizons.onnx"
INPUT = "last_step"
MAX_ITER = 200
LEARNING_RATE = 0.08


def buckets(rul: np.ndarray, censored: np.ndarray, horizons: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Bucket of each row (k: rul in (h[k-1], h[k]], len(horizons): beyond the last) and whether it is known: a
    right-censored row (rul is a lower bound) is known only beyond the last horizon."""
    bucket = np.searchsorted(np.asarray(horizons, dtype=np.float64), rul, side="left")
    return bucket, ~censored | (rul > horizons[-1])


@dataclass
class HorizonModel:
    horizons: tuple[float, ...]
    model: object  # a fitted sklearn HistGradientBoostingClassifier

    @classmethod
    def fit(cls, x_last: np.ndarray, rul: np.ndarray, censored: np.ndarray, horizons: tuple[float, ...], seed: int = 0):
        from sklearn.ensemble import HistGradientBoostingClassifier

        bucket, known = buckets(rul, censored, horizons)
        if len(np.unique(bucket[known])) < 2:
            raise RulDataError(
                f"failure-horizon classifier: expected rows on both sides of {horizons[0]:g} days, "
                f"got only bucket {np.unique(bucket[known]).tolist()}"
            )
        model = HistGradientBoostingClassifier(max_iter=MAX_ITER, learning_rate=LEARNING_RATE, random_state=seed)
        return cls(tuple(horizons), model.fit(x_last[known], bucket[known]))

    def raw(self, x_last: np.ndarray) -> np.ndarray:
        """(rows, horizons) uncalibrated P(rul <= h)."""
        return cumulative(self.model.predict_proba(x_last), self.model.classes_, len(self.horizons))

    def to_onnx(self, path: Path) -> Path:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        n = self.model.n_features_in_
        with _int_missing_flags():
            onx = convert_sklearn(
                self.model,
                initial_types=[(INPUT, FloatTensorType([None, n]))],
                options={id(self.model): {"zipmap": False}},
                target_opset={"": 17, "ai.onnx.ml": 3},
            )
        Path(path).write_bytes(onx.SerializeToString())
        return Path(path)

    def payload(self) -> dict:
        return {"file": ONNX_FILE, "classes": [int(c) for c in self.model.classes_]}


@contextmanager
def _int_missing_flags():
    """skl2onnx 1.20 gives leaves of a HistGradientBoosting tree the Python bool False as their
    `nodes_missing_value_tracks_true`, beside uint8 flags on branches, and onnx rejects a bool in an int list
    ("Expected an int, got a boolean"). Its node writer is wrapped to pass the flag as an int while converting."""
    from skl2onnx.common import tree_ensemble

    original = tree_ensemble.add_node

    def add_node(*args, **kwargs):
        if "nodes_missing_value_tracks_true" in kwargs:
            kwargs["nodes_missing_value_tracks_true"] = int(kwargs["nodes_missing_value_tracks_true"])
        return original(*args, **kwargs)

    tree_ensemble.add_node = add_node
    try:
        yield
    finally:
        tree_ensemble.add_node = original


def cumulative(prob: np.ndarray, classes, n_horizons: int) -> np.ndarray:
    """Bucket probabilities (columns = the classes seen in training) -> P(rul <= h) per horizon."""
    full = np.zeros((prob.shape[0], n_horizons + 1), dtype=np.float64)
    full[:, np.asarray(classes, dtype=int)] = prob
    return np.cumsum(full, axis=1)[:, :n_horizons]


class OnnxHorizons:
    """ONNX Runtime twin of `HorizonModel.raw`."""

    def __init__(self, path: Path, classes: list[int], n_horizons: int) -> None:
        from altaviz.ml.onnx_session import cpu_session

        self.session = cpu_session(path)
        self.classes, self.n_horizons = classes, n_horizons
        self.output = [o.name for o in self.session.get_outputs() if o.name != "label"][0]

    def raw(self, x_last: np.ndarray) -> np.ndarray:
        prob = self.session.run([self.output], {INPUT: np.ascontiguousarray(x_last, dtype=np.float32)})[0]
        return cumulative(prob, self.classes, self.n_horizons)

"""Isolation Forest anomaly detector with per-asset normalisation, and its ONNX Runtime twin.

Normalisation: every feature is robust-scaled per asset, z = (x - median) / scale, with scale the asset's
inter-quartile range / 1.349 (the standard deviation of a normal distribution with that IQR), falling back to the
standard deviation and then to 1. Assets never seen in training use the fleet's median center and scale. Missing
values become z = 0 (the asset's typical value), so a gap in one sensor does not by itself look anomalous. One
model then serves a fleet whose assets run at different baselines.

Scores: `anomaly_score` = -score_samples (about 0.3-0.5 for ordinary readings, approaching 1 for isolated ones;
higher = more anomalous); `is_anomaly` = the forest's decision_function < 0, i.e. the score exceeds the threshold
that `contamination` puts on the training data.

Beyond the training range: an Isolation Forest isolates a point outside everything it was trained on in the
same leaf as the most extreme training point, so a reading 20 sigma out scores like the training window's most
unusual one (and is missed when that window was clean). Each feature's normalised training range [low, high] is
kept, and a point's excess beyond it (the largest, in robust-sigma units) lifts the score towards 1:
score = 1 - (1 - forest score) * exp(-excess / EXCESS_SCALE). Inside the range nothing changes.

The ONNX file holds the forest (one TreeEnsemble node, see onnx_export.py) and, in its metadata, the
normalisation parameters as JSON; `AnomalyDetector.score` and `OnnxAnomalyScorer.score` apply them with the same
function (float32 output, which scikit-learn's trees use anyway) before the trees, so the two paths agree to
summation-order rounding (parity tested: max |diff| ~1e-15, identical labels). The range term is applied after
the trees by one function on both paths.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from altaviz.errors import AltavizError

_META_KEY = "altaviz_anomaly"
_IQR_TO_SIGMA = 1.349
EXCESS_SCALE = 1.0  # robust sigmas beyond the training range that close 63 % of the gap between a score and 1


class DetectorError(AltavizError):
    """The detector cannot fit or score the given frame."""


@dataclass
class Normaliser:
    """Per-asset robust scaling parameters (JSON-serialisable)."""

    features: list[str]
    asset_column: str | None
    centers: dict[str, list[float]]
    scales: dict[str, list[float]]
    fleet_center: list[float]
    fleet_scale: list[float]
    train_low: list[float] | None = None  # per feature, the normalised training range (None: models from
    train_high: list[float] | None = None  # before it was kept, scored without the range term)

    @classmethod
    def fit(cls, frame: pl.DataFrame, features: list[str], asset_column: str | None) -> Normaliser:
        groups = _asset_groups(frame, asset_column)
        centers, scales = {}, {}
        for asset, part in groups:
            centers[asset], scales[asset] = _robust_stats(part, features)
        c = np.array(list(centers.values()), dtype=np.float64)
        s = np.array(list(scales.values()), dtype=np.float64)
        return cls(
            features=list(features),
            asset_column=asset_column,
            centers={k: [float(x) for x in v] for k, v in centers.items()},
            scales={k: [float(x) for x in v] for k, v in scales.items()},
            fleet_center=[float(x) for x in np.median(c, axis=0)],
            fleet_scale=[float(x) for x in np.median(s, axis=0)],
        )

    def transform(self, frame: pl.DataFrame) -> np.ndarray:
        """The normalised feature matrix (float32, rows in frame order)."""
        _check_columns(frame, self.features, self.asset_column)
        x = frame.select(pl.col(c).cast(pl.Float64) for c in self.features).to_numpy().astype(np.float64)
        if x.ndim == 1:
            x = x.reshape(-1, len(self.features))
        center = np.tile(np.array(self.fleet_center), (frame.height, 1))
        scale = np.tile(np.array(self.fleet_scale), (frame.height, 1))
        if self.asset_column is not None and frame.height:
            assets = frame.get_column(self.asset_column).cast(pl.String).fill_null("").to_numpy()
            for asset in np.unique(assets):
                if asset in self.centers:
                    rows = assets == asset
                    center[rows] = self.centers[asset]
                    scale[rows] = self.scales[asset]
        z = (x - center) / scale
        z[~np.isfinite(z)] = 0.0
        return z.astype(np.float32)

    def learn_range(self, z: np.ndarray) -> None:
        """Keep the per-feature range of the normalised training matrix `z`."""
        self.train_low = [float(x) for x in z.min(axis=0)]
        self.train_high = [float(x) for x in z.max(axis=0)]

    def adjust(self, scores: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Forest scores lifted by the rows' excess beyond the training range (unchanged inside it)."""
        if self.train_low is None or self.train_high is None or len(scores) == 0:
            return scores
        low = np.asarray(self.train_low, dtype=np.float64)
        high = np.asarray(self.train_high, dtype=np.float64)
        zz = z.astype(np.float64)
        excess = np.maximum(np.maximum(zz - high, low - zz).max(axis=1), 0.0)
        return 1.0 - (1.0 - scores) * np.exp(-excess / EXCESS_SCALE)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Normaliser:
        return cls(**data)


def _check_columns(frame: pl.DataFrame, features: list[str], asset_column: str | None) -> None:
    needed = [*features, *([asset_column] if asset_column else [])]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DetectorError(
            f"frame: expected columns {missing} (of the model's features), got columns {frame.columns[:12]}"
        )


def _asset_groups(frame: pl.DataFrame, asset_column: str | None) -> list[tuple[str, pl.DataFrame]]:
    if asset_column is None:
        return [("", frame)]
    keyed = frame.with_columns(pl.col(asset_column).cast(pl.String).fill_null("").alias("__asset"))
    return [(str(k[0]), g) for k, g in keyed.group_by("__asset", maintain_order=True)]


def _robust_stats(part: pl.DataFrame, features: list[str]) -> tuple[np.ndarray, np.ndarray]:
    x = part.select(pl.col(c).cast(pl.Float64) for c in features).to_numpy().astype(np.float64)
    x = np.where(np.isfinite(x), x, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        center = np.nanmedian(x, axis=0)
        q75, q25 = np.nanpercentile(x, [75, 25], axis=0)
        scale = (q75 - q25) / _IQR_TO_SIGMA
        std = np.nanstd(x, axis=0)
    scale = np.where(np.isfinite(scale) & (scale > 1e-9), scale, std)
    scale = np.where(np.isfinite(scale) & (scale > 1e-9), scale, 1.0)
    center = np.where(np.isfinite(center), center, 0.0)
    return center, scale


class AnomalyDetector:
    """Isolation Forest over per-asset normalised features (scikit-learn style: fit / score / refit)."""

    def __init__(
        self,
        features: list[str],
        *,
        contamination: float = 0.01,
        n_estimators: int = 100,
        random_state: int = 0,
        asset_column: str | None = "compressor_id",
        max_samples: int | str = "auto",
    ) -> None:
        if not features:
            raise DetectorError("detector features: expected at least one feature column, got none")
        if not 0.0 < contamination <= 0.5:
            raise DetectorError(f"contamination: expected a number in (0, 0.5], got {contamination}")
        self.features = list(features)
        self.contamination = contamination
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.asset_column = asset_column
        self.max_samples = max_samples
        self.normaliser: Normaliser | None = None
        self.forest = None
        self.n_fits = 0

    def params(self) -> dict[str, Any]:
        return {
            "contamination": self.contamination,
            "n_estimators": self.n_estimators,
            "random_state": self.random_state,
            "asset_column": self.asset_column,
            "max_samples": self.max_samples,
        }

    def fit(self, frame: pl.DataFrame) -> AnomalyDetector:
        """Learn the per-asset normalisation and the forest from `frame` (one row per reading)."""
        from sklearn.ensemble import IsolationForest

        _check_columns(frame, self.features, self.asset_column)
        if frame.height < 2:
            raise DetectorError(f"training frame: expected at least 2 rows, got {frame.height}")
        self.normaliser = Normaliser.fit(frame, self.features, self.asset_column)
        z = self.normaliser.transform(frame)
        self.normaliser.learn_range(z)
        self.forest = IsolationForest(
            n_estimators=self.n_estimators,
            contamination=self.contamination,
            random_state=self.random_state,
            max_samples=self.max_samples,
        ).fit(z)
        self.n_fits += 1
        return self

    def refit(self, recent: pl.DataFrame) -> AnomalyDetector:
        """Retrain normalisation and forest on a recent window (the online path); same hyper-parameters."""
        return self.fit(recent)

    def _fitted(self):
        if self.forest is None or self.normaliser is None:
            raise DetectorError("anomaly detector: expected a fitted model (call fit first), got an unfitted one")
        return self.forest, self.normaliser

    def score(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` with `anomaly_score` (Float64, higher = more anomalous) and `is_anomaly` (Boolean) added."""
        forest, normaliser = self._fitted()
        z = normaliser.transform(frame)
        if frame.height == 0:
            scores, flags = np.zeros(0), np.zeros(0, dtype=bool)
        else:
            scores = normaliser.adjust(-forest.score_samples(z), z)
            flags = scores > -forest.offset_  # decision_function < 0 where the range term is 0
        return frame.with_columns(
            pl.Series("anomaly_score", scores, dtype=pl.Float64), pl.Series("is_anomaly", flags, dtype=pl.Boolean)
        )

    def to_onnx(self, path: Path) -> Path:
        """Write the forest as ONNX with the normalisation parameters in its metadata."""
        from altaviz.ml.anomaly.onnx_export import forest_to_onnx

        forest, normaliser = self._fitted()
        model = forest_to_onnx(forest, len(self.features))
        meta = {"normaliser": normaliser.to_json(), "offset": float(forest.offset_), "params": self.params()}
        entry = model.metadata_props.add()
        entry.key, entry.value = _META_KEY, json.dumps(meta)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(model.SerializeToString())
        return path


class OnnxAnomalyScorer:
    """Scores frames with an exported detector in ONNX Runtime (no scikit-learn needed)."""

    def __init__(self, path: Path) -> None:
        from altaviz.ml.onnx_session import cpu_session

        path = Path(path)
        if not path.is_file():
            raise DetectorError(f"ONNX model {path}: expected an existing file, got none")
        self.session = cpu_session(path)
        props = self.session.get_modelmeta().custom_metadata_map
        if _META_KEY not in props:
            raise DetectorError(f"ONNX model {path}: expected altaviz anomaly metadata, got a model without it")
        meta = json.loads(props[_META_KEY])
        self.normaliser = Normaliser.from_json(meta["normaliser"])
        self.offset = float(meta["offset"])
        self.params = meta["params"]
        self.features = self.normaliser.features
        self._input = self.session.get_inputs()[0].name

    def score(self, frame: pl.DataFrame) -> pl.DataFrame:
        z = self.normaliser.transform(frame)
        if frame.height == 0:
            scores, flags = np.zeros(0), np.zeros(0, dtype=bool)
        else:
            (raw,) = self.session.run(["anomaly_score"], {self._input: z})
            scores = self.normaliser.adjust(raw.ravel().astype(np.float64), z)
            flags = scores > -self.offset
        return frame.with_columns(
            pl.Series("anomaly_score", scores, dtype=pl.Float64), pl.Series("is_anomaly", flags, dtype=pl.Boolean)
        )

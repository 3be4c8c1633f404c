"""ONNX export of the trained RUL ensemble and ONNX Runtime serving, with the calibration maps kept beside it
as JSON (isotonic regression = piecewise-linear interpolation over its thresholds)."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from altaviz.ml.rul.errors import RulDataError
from altaviz.ml.rul.training import FittedRul

INPUT = "window"
OUTPUT = "rul_and_prob"


def export_onnx(fitted: FittedRul, path: Path) -> Path:
    """Write the ensemble to ONNX with a dynamic batch axis (window length and features fixed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = fitted.config
    example = torch.zeros(2, cfg.window, fitted.n_features)
    fitted.ensemble.eval()
    with warnings.catch_warnings():  # the TorchScript exporter (onnxscript, needed by dynamo=True, is not a dependency)
        warnings.simplefilter("ignore", DeprecationWarning)
        _export(fitted, example, path)
    return path


def _export(fitted: FittedRul, example: torch.Tensor, path: Path) -> None:
    torch.onnx.export(
        fitted.ensemble,
        (example,),
        str(path),
        input_names=[INPUT],
        output_names=[OUTPUT],
        dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def calibration_payload(fitted: FittedRul) -> dict:
    return {
        "horizons": list(fitted.config.horizons),
        "window": fitted.config.window,
        "cap": fitted.config.cap,
        "n_features": fitted.n_features,
        "thresholds": fitted.thresholds,
        "isotonic": [{"x": c.X_thresholds_.tolist(), "y": c.y_thresholds_.tolist()} for c in fitted.calibrators],
        # failure probabilities from a boosted classifier in its own ONNX file beside this one (horizons.py)
        "horizon_model": None if fitted.horizon_model is None else fitted.horizon_model.payload(),
    }


def write_calibration(fitted: FittedRul, path: Path, extra: dict | None = None) -> Path:
    path = Path(path)
    path.write_text(json.dumps({**calibration_payload(fitted), **(extra or {})}, indent=1))
    return path


@dataclass
class OnnxRul:
    """ONNX Runtime scorer: windows (batch, window, features) -> RUL and calibrated P(rul <= h)."""

    session: object
    meta: dict
    horizons: object | None = None  # horizons.OnnxHorizons when the model has a boosted failure classifier

    @classmethod
    def load(cls, onnx_path: Path, meta_path: Path) -> OnnxRul:
        from altaviz.ml.onnx_session import cpu_session
        from altaviz.ml.rul.horizons import OnnxHorizons

        session = cpu_session(onnx_path)
        meta = json.loads(Path(meta_path).read_text())
        spec = meta.get("horizon_model")
        horizons = None
        if spec:
            path = Path(meta_path).parent / spec["file"]
            if not path.is_file():
                raise RulDataError(
                    f"RUL failure classifier {path}: expected the ONNX file beside {meta_path}, got none"
                )
            horizons = OnnxHorizons(path, spec["classes"], len(meta["horizons"]))
        return cls(session, meta, horizons)

    def raw(self, windows: np.ndarray) -> np.ndarray:
        w = np.ascontiguousarray(windows, dtype=np.float32)
        expected = (self.meta["window"], self.meta["n_features"])
        if w.ndim != 3 or w.shape[1:] != expected:
            raise RulDataError(f"RUL model input: expected (batch, {expected[0]}, {expected[1]}), got {w.shape}")
        return self.session.run([OUTPUT], {INPUT: w})[0]

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.raw(windows)
        raw_prob = out[:, 1:] if self.horizons is None else self.horizons.raw(windows[:, -1, :])
        cols = [
            np.clip(np.interp(raw_prob[:, i], iso["x"], iso["y"]), 0.0, 1.0)
            for i, iso in enumerate(self.meta["isotonic"])
        ]
        return out[:, 0], np.maximum.accumulate(np.stack(cols, axis=1), axis=1)

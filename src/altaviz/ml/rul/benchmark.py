"""C-MAPSS benchmark: train on train_FDxxx, score the last cycle of every test engine against RUL_FDxxx."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from altaviz.ml import metrics
from altaviz.ml.rul.cmapss import ConditionNormaliser, load_subset
from altaviz.ml.rul.training import FittedRul, RulConfig, Trajectory, fit_rul, last_window


def trajectories(frame, normaliser: ConditionNormaliser, *, with_rul: bool, age: bool = False) -> list[Trajectory]:
    """Per-engine trajectories; with `age`, the cycle count (operating age, /100) is an extra input column."""
    feats = normaliser.transform(frame)
    if age:
        feats = np.concatenate([feats, (frame["cycle"].to_numpy()[:, None] / 100.0).astype(np.float32)], axis=1)
    units = frame["unit"].to_numpy()
    rul = frame["rul"].to_numpy().astype(np.float32)
    out = []
    for u in np.unique(units):
        mask = units == u
        out.append(Trajectory(str(int(u)), feats[mask], rul[mask] if with_rul else None))
    return out


def evaluate(fitted: FittedRul, test: list[Trajectory], true_rul: np.ndarray) -> dict:
    cfg = fitted.config
    windows = np.stack([last_window(t, cfg.window) for t in test])
    pred, prob = fitted.predict(windows)
    truth_capped = np.minimum(true_rul, cfg.cap)
    result = {
        "rmse": round(metrics.rmse(truth_capped, pred), 3),
        "mae": round(metrics.mae(truth_capped, pred), 3),
        "phm08_score": round(metrics.phm08_score(truth_capped, pred), 2),
        "rmse_uncapped_truth": round(metrics.rmse(true_rul, pred), 3),
    }
    for i, h in enumerate(cfg.horizons):
        label = true_rul <= h
        tag = f"{int(h)}c"
        result[f"brier_{tag}"] = round(metrics.brier(label, prob[:, i]), 4)
        result[f"f1_{tag}"] = round(metrics.f1(label, prob[:, i] >= 0.5), 3)
        result[f"positives_{tag}"] = int(label.sum())
    first = cfg.horizons[-1]
    result[f"reliability_{int(first)}c"] = metrics.reliability_curve(true_rul <= first, prob[:, -1], n_bins=5)
    return result


def run_cmapss(data_dir: Path, subset: str, cfg: RulConfig, *, age: bool = True, onnx_out: Path | None = None) -> dict:
    started = time.perf_counter()
    data = load_subset(data_dir, subset)
    normaliser = ConditionNormaliser.fit(data.train)
    train = trajectories(data.train, normaliser, with_rul=True, age=age)
    test = trajectories(data.test, normaliser, with_rul=False, age=age)
    fitted = fit_rul(train, cfg)
    result = {"benchmark": "cmapss", "subset": subset, **evaluate(fitted, test, data.test_rul)}
    epochs = [sum(1 for h in fitted.history if h["seed"] == s) for s in cfg.seeds]
    result.update(
        {
            "train_seconds": round(fitted.train_seconds, 1),
            "train_cpu_seconds": round(fitted.train_cpu_seconds, 1),
            "total_seconds": round(time.perf_counter() - started, 1),
            "n_test_engines": len(test),
            "n_train_engines": len(train),
            "n_conditions": len(normaliser.stats),
            "features": normaliser.features + (["cycle"] if age else []),
            "model": {k: v for k, v in asdict(cfg).items() if k != "threads"},
            "epochs_per_seed": epochs,
            "val_rmse_per_seed": [min(h["val_rmse"] for h in fitted.history if h["seed"] == s) for s in cfg.seeds],
            "threads": cfg.threads,
        }
    )
    if onnx_out is not None:
        from altaviz.ml.rul.serving import export_onnx, write_calibration

        export_onnx(fitted, onnx_out)
        write_calibration(fitted, Path(onnx_out).with_suffix(".json"), {"features": normaliser.features})
        result["onnx"] = str(onnx_out)
    return result

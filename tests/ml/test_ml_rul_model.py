"""A small RUL model trained on real C-MAPSS engines: beats the mean-RUL baseline on held-out engines, exports to
ONNX with outputs equal to PyTorch's, and trains deterministically."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from altaviz.ml import metrics
from altaviz.ml.rul.benchmark import trajectories
from altaviz.ml.rul.cmapss import ConditionNormaliser, load_subset
from altaviz.ml.rul.errors import RulConfigError, RulDataError
from altaviz.ml.rul.horizons import ONNX_FILE as HORIZON_ONNX
from altaviz.ml.rul.serving import OnnxRul, export_onnx, write_calibration
from altaviz.ml.rul.training import RulConfig, fit_rul, last_window

DATA = Path(__file__).parents[1] / "data" / "cmapss"
SMALL = RulConfig(kind="cnn", hidden=16, seeds=(0,), max_epochs=5, patience=5, window=30, lr=3e-3, threads=1)


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    sub = load_subset(DATA, "FD001")
    train_frame = sub.train.filter(sub.train["unit"] <= 40)
    norm = ConditionNormaliser.fit(train_frame)
    train = trajectories(train_frame, norm, with_rul=True)
    test = trajectories(sub.test, norm, with_rul=False)
    fitted = fit_rul(train, SMALL)
    windows = np.stack([last_window(t, SMALL.window) for t in test])
    mean_rul = float(np.mean(np.minimum(train_frame["rul"].to_numpy(), SMALL.cap)))
    return fitted, windows, np.minimum(sub.test_rul, SMALL.cap), mean_rul


def test_small_model_beats_mean_rul_baseline_on_held_out_engines(trained):
    fitted, windows, truth, mean_rul = trained
    pred, prob = fitted.predict(windows)
    baseline = metrics.rmse(truth, np.full_like(truth, mean_rul))
    model = metrics.rmse(truth, pred)
    assert model < 0.6 * baseline, (model, baseline)
    assert prob.shape == (100, 3) and np.all((prob >= 0) & (prob <= 1))
    assert np.all(np.diff(prob, axis=1) >= 0)  # P(fail within 7) <= P(within 14) <= P(within 30)


def test_onnx_matches_pytorch(trained, tmp_path):
    fitted, windows, _, _ = trained
    onnx_path = export_onnx(fitted, tmp_path / "rul.onnx")
    meta = write_calibration(fitted, tmp_path / "rul.json")
    served = OnnxRul.load(onnx_path, meta)
    for batch in (windows[:1], windows[:7], windows):  # dynamic batch axis
        assert np.max(np.abs(served.raw(batch) - fitted.raw(batch))) <= 1e-4
    pred_t, prob_t = fitted.predict(windows)
    pred_o, prob_o = served.predict(windows)
    assert np.max(np.abs(pred_o - pred_t)) <= 1e-4
    assert np.max(np.abs(prob_o - prob_t)) <= 1e-4


def test_boosted_failure_classifier_is_served_from_its_own_onnx_file(tmp_path):
    torch.set_num_threads(1)
    sub = load_subset(DATA, "FD001")
    frame = sub.train.filter(sub.train["unit"] <= 30)
    norm = ConditionNormaliser.fit(frame)
    cfg = replace(SMALL, max_epochs=2, failure_model="gbm", horizons=(30.0, 60.0, 90.0))
    fitted = fit_rul(trajectories(frame, norm, with_rul=True), cfg)
    windows = np.stack([last_window(t, cfg.window) for t in trajectories(sub.test, norm, with_rul=False)])
    pred, prob = fitted.predict(windows)
    assert np.all(np.diff(prob, axis=1) >= 0)
    truth = sub.test_rul <= 30.0
    assert prob[truth, 0].mean() > prob[~truth, 0].mean() + 0.3  # it tells engines near their end from the rest
    onnx_path = export_onnx(fitted, tmp_path / "rul.onnx")
    fitted.horizon_model.to_onnx(tmp_path / HORIZON_ONNX)
    served = OnnxRul.load(onnx_path, write_calibration(fitted, tmp_path / "rul.json"))
    assert served.horizons is not None
    pred_o, prob_o = served.predict(windows)
    assert np.max(np.abs(pred_o - pred)) <= 1e-4 and np.max(np.abs(prob_o - prob)) <= 1e-4
    (tmp_path / HORIZON_ONNX).unlink()
    with pytest.raises(RulDataError, match="ONNX file beside"):
        OnnxRul.load(onnx_path, tmp_path / "rul.json")
    with pytest.raises(RulConfigError, match="failure model"):
        fit_rul([], RulConfig(failure_model="forest"))


def test_training_is_deterministic(trained):
    fitted, windows, _, _ = trained
    sub = load_subset(DATA, "FD001")
    frame = sub.train.filter(sub.train["unit"] <= 40)
    again = fit_rul(trajectories(frame, ConditionNormaliser.fit(frame), with_rul=True), SMALL)
    assert np.array_equal(again.raw(windows), fitted.raw(windows))


def test_bad_config_is_named():
    with pytest.raises(RulConfigError, match="expected one of"):
        fit_rul([], RulConfig(kind="transformer"))


def test_ensemble_rul_stays_within_zero_and_cap():
    from altaviz.ml.rul.network import Ensemble

    class Fixed(torch.nn.Module):
        def forward(self, x):
            first = x[:, -1, :1]  # rul / cap as given, then one logit
            return torch.cat([first, torch.zeros_like(first)], dim=1)

    x = torch.tensor([[[-0.5]], [[0.4]], [[1.8]]])
    out = Ensemble([Fixed()], cap=30.0)(x)
    assert out[:, 0].tolist() == pytest.approx([0.0, 12.0, 30.0])

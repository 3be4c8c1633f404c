"""Metric functions against values worked out by hand."""

import math

import pytest

from altaviz.ml import metrics


def test_rmse_and_mae_by_hand():
    assert metrics.rmse([0, 0], [3, 4]) == pytest.approx(math.sqrt(12.5))
    assert metrics.mae([0, 0], [3, -4]) == pytest.approx(3.5)


def test_phm08_penalises_late_more_than_early():
    # d = pred - true: -10 (early) -> e^(10/13) - 1 ; +10 (late) -> e^(10/10) - 1
    assert metrics.phm08_score([10, 10], [0, 20]) == pytest.approx((math.exp(10 / 13) - 1) + (math.e - 1))
    assert metrics.phm08_score([50], [50]) == 0.0
    assert metrics.phm08_score([50], [55]) > metrics.phm08_score([50], [45])


def test_f1_precision_recall_by_hand():
    assert metrics.f1([1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(0.5)  # tp=1 fp=1 fn=1
    assert metrics.f1([1, 1, 1, 0], [1, 1, 1, 0]) == 1.0
    assert metrics.f1([0, 0], [0, 0]) == 0.0
    assert metrics.precision_recall([1, 1, 1, 0], [1, 0, 1, 1]) == pytest.approx((2 / 3, 2 / 3))


def test_brier_and_reliability_by_hand():
    assert metrics.brier([1, 0], [0.8, 0.4]) == pytest.approx((0.2**2 + 0.4**2) / 2)
    curve = metrics.reliability_curve([0, 1, 1, 1], [0.05, 0.15, 0.95, 0.9], n_bins=2)
    assert [(b["mean_predicted"], b["observed"], b["count"]) for b in curve] == [(0.1, 0.5, 2), (0.925, 1.0, 2)]


def test_bad_inputs_are_named():
    with pytest.raises(metrics.MetricInputError, match="equal lengths"):
        metrics.rmse([1, 2], [1])
    with pytest.raises(metrics.MetricInputError, match="empty"):
        metrics.mae([], [])
    with pytest.raises(metrics.MetricInputError, match="probabilities"):
        metrics.brier([1], [1.5])

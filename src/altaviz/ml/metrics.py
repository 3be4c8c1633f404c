"""Model metrics: regression (RMSE, MAE, NASA PHM08 score) and classification / calibration (F1, Brier, reliability).

Plain NumPy functions of (truth, prediction) arrays, shared by the RUL and anomaly families.
"""

from __future__ import annotations

import numpy as np

from altaviz.errors import AltavizError


class MetricInputError(AltavizError):
    """Arrays given to a metric do not fit together."""


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise MetricInputError(f"metric inputs: expected equal lengths, got truth {t.size} vs prediction {p.size}")
    if t.size == 0:
        raise MetricInputError("metric inputs: expected at least one value, got empty arrays")
    return t, p


def rmse(y_true, y_pred) -> float:
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def mae(y_true, y_pred) -> float:
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(p - t)))


def phm08_score(y_true, y_pred) -> float:
    """NASA PHM08 challenge score: sum of exp(-d/13)-1 for early (d<0) and exp(d/10)-1 for late predictions,
    d = predicted - true RUL. Late predictions are penalised harder. Lower is better; 0 is perfect."""
    t, p = _pair(y_true, y_pred)
    d = p - t
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


def f1(y_true, y_pred) -> float:
    """F1 of the positive class for boolean / 0-1 labels; 0.0 when there is no true or predicted positive."""
    t, p = _pair(y_true, y_pred)
    t, p = t > 0.5, p > 0.5
    tp = float(np.sum(t & p))
    fp = float(np.sum(~t & p))
    fn = float(np.sum(t & ~p))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def precision_recall(y_true, y_pred) -> tuple[float, float]:
    t, p = _pair(y_true, y_pred)
    t, p = t > 0.5, p > 0.5
    tp = float(np.sum(t & p))
    precision = tp / float(np.sum(p)) if np.any(p) else 0.0
    recall = tp / float(np.sum(t)) if np.any(t) else 0.0
    return precision, recall


def brier(y_true, prob) -> float:
    """Mean squared difference between predicted probability and the 0/1 outcome."""
    t, p = _pair(y_true, prob)
    if np.any((p < 0) | (p > 1)):
        raise MetricInputError("brier: expected probabilities in [0, 1], got values outside")
    return float(np.mean((p - (t > 0.5)) ** 2))


def reliability_curve(y_true, prob, *, n_bins: int = 10) -> list[dict[str, float]]:
    """Equal-width probability bins; per non-empty bin: mean predicted probability, observed frequency, count."""
    t, p = _pair(y_true, prob)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1], right=False), 0, n_bins - 1)
    curve = []
    for b in range(n_bins):
        mask = idx == b
        if np.any(mask):
            curve.append(
                {
                    "bin_low": round(float(edges[b]), 4),
                    "bin_high": round(float(edges[b + 1]), 4),
                    "mean_predicted": round(float(np.mean(p[mask])), 4),
                    "observed": round(float(np.mean(t[mask] > 0.5)), 4),
                    "count": int(np.sum(mask)),
                }
            )
    return curve

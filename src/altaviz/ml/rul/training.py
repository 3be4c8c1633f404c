"""Windowing, training (early stopping on a validation split by asset, fixed seeds) and calibration of the RUL
ensemble. Works on NumPy arrays so the C-MAPSS benchmark and the simulated fleet share it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.isotonic import IsotonicRegression
from torch import nn

from altaviz.ml.rul.errors import RulConfigError, RulDataError
from altaviz.ml.rul.network import KINDS, Ensemble, build_network

FAILURE_MODELS = ("network", "gbm")


@dataclass(frozen=True)
class RulConfig:
    kind: str = "cnn"
    window: int = 40
    cap: float = 125.0  # piecewise-linear target: min(rul, cap)
    horizons: tuple[float, ...] = (7.0, 14.0, 30.0)
    hidden: int = 32
    seeds: tuple[int, ...] = (0, 1, 2)
    max_epochs: int = 30
    patience: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.2
    head_weight: float = 0.3
    threads: int = 2
    extended_inputs: bool = False  # fleet models: absolute, trend and history inputs beside the centred ones
    residual_inputs: bool = False  # fleet only: cross-sensor residual features (fleet.fit_residuals)
    failure_model: str = "network"  # P(rul <= h) from the network's heads, or "gbm": a boosted classifier (horizons.py)

    def check(self) -> None:
        if self.kind not in KINDS:
            raise RulConfigError(f"RUL model kind: expected one of {KINDS}, got {self.kind!r}")
        if self.failure_model not in FAILURE_MODELS:
            raise RulConfigError(f"RUL failure model: expected one of {FAILURE_MODELS}, got {self.failure_model!r}")
        if self.window < 2 or self.cap <= 0 or not self.seeds or self.max_epochs < 1:
            raise RulConfigError(
                f"RUL config: expected window >= 2, cap > 0, >= 1 seed and epoch, got window={self.window} "
                f"cap={self.cap} seeds={self.seeds} max_epochs={self.max_epochs}"
            )


@dataclass
class Trajectory:
    """One asset's feature rows in time order and, for training, the true remaining life at each row."""

    asset: str
    features: np.ndarray  # (time, n_features) float32
    rul: np.ndarray | None = None  # (time,) uncapped
    keep: np.ndarray | None = None  # (time,) bool: rows used for training
    censored: np.ndarray | None = None  # (time,) bool: rul is only a lower bound (no failure seen yet)


def window_ends(traj: Trajectory, window: int) -> np.ndarray:
    """A (time, window, features) stack: the window ending at each row, front-padded with the first row."""
    x = traj.features
    pad = np.repeat(x[:1], window - 1, axis=0)
    padded = np.concatenate([pad, x], axis=0)
    idx = np.arange(x.shape[0])[:, None] + np.arange(window)[None, :]
    return padded[idx]


def last_window(traj: Trajectory, window: int) -> np.ndarray:
    x = traj.features[-window:]
    if x.shape[0] < window:
        x = np.concatenate([np.repeat(x[:1], window - x.shape[0], axis=0), x], axis=0)
    return x


def stack_training(trajs: list[Trajectory], window: int) -> tuple[np.ndarray, ...]:
    xs, ys, groups, cens = [], [], [], []
    for i, t in enumerate(trajs):
        if t.rul is None:
            raise RulDataError(f"training trajectory {t.asset}: expected true RUL per row, got none")
        keep = np.ones(t.rul.shape[0], dtype=bool) if t.keep is None else t.keep
        xs.append(window_ends(t, window)[keep])
        ys.append(t.rul[keep])
        groups.append(np.full(int(keep.sum()), i))
        cens.append(np.zeros(int(keep.sum()), bool) if t.censored is None else t.censored[keep])
    x, y = np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.float32)
    return x, y, np.concatenate(groups), np.concatenate(cens)


@dataclass
class FittedRul:
    config: RulConfig
    ensemble: Ensemble
    calibrators: list[IsotonicRegression]
    n_features: int
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    thresholds: list[float] = field(default_factory=list)  # per horizon: the F1-best cut on validation
    train_cpu_seconds: float = 0.0  # CPU time of this process (all threads): a load-independent cost measure
    horizon_model: object | None = None  # a horizons.HorizonModel when config.failure_model == "gbm"

    def raw(self, windows: np.ndarray) -> np.ndarray:
        """Ensemble output [rul, raw P(rul <= h)...] for a (batch, window, features) array."""
        self.ensemble.eval()
        with torch.no_grad():
            return self.ensemble(torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))).numpy()

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.raw(windows)
        raw_prob = out[:, 1:] if self.horizon_model is None else self.horizon_model.raw(windows[:, -1, :])
        return out[:, 0], calibrate(self.calibrators, raw_prob)


def calibrate(calibrators: list[IsotonicRegression], raw_prob: np.ndarray) -> np.ndarray:
    """Isotonic maps per horizon, then made monotone across horizons (P(<=7) <= P(<=14) <= P(<=30))."""
    cols = [np.clip(c.predict(raw_prob[:, i].astype(np.float64)), 0.0, 1.0) for i, c in enumerate(calibrators)]
    return np.maximum.accumulate(np.stack(cols, axis=1), axis=1)


def _targets(rul: np.ndarray, censored: np.ndarray, cfg: RulConfig) -> tuple[np.ndarray, ...]:
    """Capped, scaled RUL and horizon labels, each with a mask of where it is known: a right-censored row (rul is
    a lower bound) has a known capped RUL only if the bound reaches the cap, a known label only beyond h."""
    capped = (np.minimum(rul, cfg.cap) / cfg.cap).astype(np.float32)
    y_known = (~censored | (rul >= cfg.cap)).astype(np.float32)
    labels = np.stack([(rul <= h).astype(np.float32) for h in cfg.horizons], axis=1)
    l_known = np.stack([(~censored | (rul > h)).astype(np.float32) for h in cfg.horizons], axis=1)
    return capped, y_known, labels, l_known


def _fit_member(cfg, seed, x, targets, groups) -> tuple[nn.Module, np.ndarray, list[dict]]:
    y, y_known, labels, l_known = targets
    rng = np.random.default_rng(seed)
    assets = np.unique(groups)
    n_val = max(1, int(round(len(assets) * cfg.val_fraction)))
    if len(assets) - n_val < 1:
        raise RulDataError(f"RUL training: expected at least 2 assets for a split by asset, got {len(assets)}")
    val_assets = rng.choice(assets, size=n_val, replace=False)
    val = np.isin(groups, val_assets)
    torch.manual_seed(seed)
    net = build_network(cfg.kind, x.shape[2], len(cfg.horizons), cfg.hidden)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.max_epochs, eta_min=cfg.lr * 0.05)
    xt, yt, lt = torch.from_numpy(x[~val]), torch.from_numpy(y[~val]), torch.from_numpy(labels[~val])
    ykt, lkt = torch.from_numpy(y_known[~val]), torch.from_numpy(l_known[~val])
    vk = y_known[val] > 0
    xv, yv = torch.from_numpy(x[val]), y[val]
    bce = nn.BCEWithLogitsLoss(reduction="none")
    best, best_state, stale, history = np.inf, None, 0, []
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(cfg.max_epochs):
        net.train()
        order = torch.randperm(xt.shape[0], generator=gen)
        for start in range(0, len(order), cfg.batch_size):
            b = order[start : start + cfg.batch_size]
            out = net(xt[b])
            mse = ((out[:, 0] - yt[b]) ** 2 * ykt[b]).sum() / ykt[b].sum().clamp(min=1.0)
            cls = (bce(out[:, 1:], lt[b]) * lkt[b]).sum() / lkt[b].sum().clamp(min=1.0)
            loss = mse + cfg.head_weight * cls
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        net.eval()
        with torch.no_grad():
            pv = net(xv).numpy()
        val_rmse = float(np.sqrt(np.mean((pv[vk, 0] - yv[vk]) ** 2))) * cfg.cap if vk.any() else 0.0
        history.append({"seed": seed, "epoch": epoch, "val_rmse": round(val_rmse, 3)})
        if val_rmse < best - 1e-4:
            best, stale = val_rmse, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    net.load_state_dict(best_state)
    return net, val, history


def fit_rul(trajs: list[Trajectory], cfg: RulConfig) -> FittedRul:
    """Train one member per seed (each with its own asset split), calibrate the failure heads on the pooled
    validation predictions with isotonic regression."""
    cfg.check()
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    started, cpu_started = time.perf_counter(), time.process_time()
    x, rul, groups, censored = stack_training(trajs, cfg.window)
    targets = _targets(rul, censored, cfg)
    labels, l_known = targets[2], targets[3]
    members, history, val_probs, val_labels, val_known, val_masks = [], [], [], [], [], []
    for seed in cfg.seeds:
        net, val, hist = _fit_member(cfg, seed, x, targets, groups)
        members.append(net)
        history += hist
        net.eval()
        with torch.no_grad():
            val_probs.append(torch.sigmoid(net(torch.from_numpy(x[val]))[:, 1:]).numpy())
        val_labels.append(labels[val])
        val_known.append(l_known[val] > 0)
        val_masks.append(val)
    probs, labs, known = np.concatenate(val_probs), np.concatenate(val_labels), np.concatenate(val_known)
    horizon_model = None
    if cfg.failure_model == "gbm":  # fitted beside the first member's validation assets, calibrated on them
        from altaviz.ml.rul.horizons import HorizonModel

        val = val_masks[0]
        horizon_model = HorizonModel.fit(x[~val, -1, :], rul[~val], censored[~val], cfg.horizons, seed=cfg.seeds[0])
        probs, labs, known = horizon_model.raw(x[val, -1, :]), labels[val], l_known[val] > 0
    calibrators = [_calibrator(probs[known[:, i], i], labs[known[:, i], i]) for i in range(len(cfg.horizons))]
    calibrated = calibrate(calibrators, probs)
    thresholds = [best_f1_threshold(labs[known[:, i], i], calibrated[known[:, i], i]) for i in range(len(calibrators))]
    ensemble = Ensemble(members, cfg.cap).eval()
    fitted = FittedRul(cfg, ensemble, calibrators, x.shape[2], history, time.perf_counter() - started, thresholds)
    fitted.train_cpu_seconds = time.process_time() - cpu_started
    fitted.horizon_model = horizon_model
    return fitted


def _calibrator(prob: np.ndarray, label: np.ndarray) -> IsotonicRegression:
    """Isotonic map from the head's probability to the observed frequency on validation data. A small fleet can
    leave a horizon without any validation row whose label is known: then the map is the identity (the head's
    own, uncalibrated probability)."""
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    if prob.size == 0:
        return iso.fit(np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    return iso.fit(prob, label)


def best_f1_threshold(labels: np.ndarray, prob: np.ndarray) -> float:
    """The probability cut with the best F1 on (validation) data; 0.5 when there are no positives."""
    if labels.size == 0 or labels.sum() == 0:
        return 0.5
    best, cut = -1.0, 0.5
    for c in np.unique(np.round(prob, 3)):
        flag = prob >= c
        tp = float(np.sum(flag & (labels > 0.5)))
        score = 2 * tp / (float(flag.sum()) + float((labels > 0.5).sum()))
        if score > best + 1e-12:
            best, cut = score, round(float(c), 4)
    return cut

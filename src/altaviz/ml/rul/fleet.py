"""Simulated-fleet RUL data: hourly sequences of gold features per asset, with remaining life in days from the
simulator's ground truth (`events/failures.csv`; failures up to CENSOR_DAYS after the window end are recorded,
so a row with no later failure has a remaining life of at least end + CENSOR_DAYS - t: right-censored)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from altaviz.ml.rul.errors import RulDataError
from altaviz.ml.rul.training import Trajectory

DAY_S = 86_400.0
STEP = "1h"  # one sequence step per hour (last reading of the hour); a 24-step window = 24 h of readings


def feature_columns(profile) -> list[str]:
    """Numeric gold columns the model reads: sensors, rolling stats, rates of change, derived ratios."""
    from altaviz.profiles.spec import feature_spec

    spec = feature_spec(profile)
    return [
        *profile.sensor_names,
        *(f.name for f in spec.rolling),
        *(r.name for r in spec.rates),
        *(d.name for d in spec.derived),
    ]


def hourly(gold: pl.DataFrame, id_col: str, time_col: str, features: list[str]) -> pl.DataFrame:
    """Last gold row of every (asset, hour), sorted by asset and time."""
    missing = [c for c in [id_col, time_col, *features] if c not in gold.columns]
    if missing:
        raise RulDataError(f"gold features: expected columns {missing} for the RUL model, got none of them")
    return (
        gold.select(id_col, time_col, *features)
        .sort(id_col, time_col)
        .with_columns(pl.col(time_col).dt.truncate(STEP).alias("_hour"))
        .group_by(id_col, "_hour", maintain_order=True)
        .last()
        .drop("_hour")
        .with_columns(pl.col(features).cast(pl.Float64))
    )


def censor_time(raw_dir: Path, fallback: datetime) -> datetime:
    """Until when the ground truth is complete: simulation end + CENSOR_DAYS (fallback: last gold time)."""
    from datetime import timedelta

    from altaviz.simulate.events import CENSOR_DAYS

    meta = Path(raw_dir) / "simulation.json"
    end = fallback
    if meta.is_file():
        end = datetime.fromisoformat(json.loads(meta.read_text())["end"].replace("Z", "+00:00"))
    return end + timedelta(days=CENSOR_DAYS)


def with_rul(frame: pl.DataFrame, failures: pl.DataFrame, id_col: str, time_col: str, censor: datetime) -> pl.DataFrame:
    """Adds rul_days (days to the next failure, or the censoring lower bound), censored (bool) and degrading
    (the next failure's degradation has begun: the only rows whose signals can show it)."""
    fail = failures.select(
        pl.col("compressor_id").alias(id_col),
        pl.col("failure_time").str.to_datetime(time_zone="UTC").dt.cast_time_unit("us").alias("_next"),
        pl.col("onset_time").str.to_datetime(time_zone="UTC").dt.cast_time_unit("us").alias("_onset"),
    ).sort(id_col, "_next")
    joined = frame.with_columns(pl.col(time_col).dt.cast_time_unit("us")).join_asof(
        fail,
        left_on=time_col,
        right_on="_next",
        by=id_col,
        strategy="forward",
        allow_exact_matches=False,
        check_sortedness=False,
    )
    until = pl.coalesce(pl.col("_next"), pl.lit(censor, dtype=pl.Datetime("us", "UTC")))
    return joined.with_columns(
        ((until - pl.col(time_col)).dt.total_seconds() / DAY_S).alias("rul_days"),
        pl.col("_next").is_null().alias("censored"),
        (pl.col(time_col) >= pl.col("_onset")).fill_null(False).alias("degrading"),
    ).drop("_next", "_onset")


HEALTHY_Q = 0.25  # per-asset quantile on the healthy side of each failure-sensitive feature
MIN_EFFECT = 0.2  # |standardised shift| near failure below which a feature keeps the median centre
FAR_DAYS = 30.0  # a row this far from its next failure counts as healthy (a censored row: its lower bound)


TREND_HOURS = (72, 168)  # trend inputs: how much each feature moved over the last 3 and 7 days
RESIDUAL_WINDOWS_S = (4 * 3600, 24 * 3600)  # cross-sensor residuals of the rolling means over these windows


def residual_groups(profile) -> list[list[str]]:
    """Per window of RESIDUAL_WINDOWS_S in the profile's feature spec, its rolling-mean features of every sensor:
    each is predicted from the others of its group (`fit_residuals`)."""
    from altaviz.profiles.spec import feature_spec

    rolling = feature_spec(profile).rolling
    groups = [[f.name for f in rolling if f.stat == "mean" and f.seconds == w] for w in RESIDUAL_WINDOWS_S]
    return [g for g in groups if len(g) >= 2]


def fit_residuals(frame: pl.DataFrame, groups: list[list[str]]) -> list[dict]:
    """Per feature of each group, a least-squares line predicting it from the other features of its group, fitted
    on healthy rows (more than FAR_DAYS from a failure, when the frame has rul_days / censored and enough such
    rows; else every row).
    A unit whose discharge temperature creeps with an unchanged pressure ratio, load and flow (a fouling cooler)
    shows it in its residual, from its first row, whatever the centre of its history."""
    healthy = frame
    if {"rul_days", "censored"} <= set(frame.columns):
        healthy = frame.filter(_far_from_failure())
    out = []
    for group in groups:
        h = healthy.select(group).drop_nulls().to_numpy().astype(np.float64)
        if h.shape[0] <= len(group):  # too few rows far from a failure for a fit (a short history): every row
            h = frame.select(group).drop_nulls().to_numpy().astype(np.float64)
        if h.shape[0] <= len(group):
            raise RulDataError(f"residual inputs over {group}: expected more than {len(group)} rows, got {h.shape[0]}")
        for i, target in enumerate(group):
            inputs = [c for c in group if c != target]
            design = np.column_stack([h[:, [group.index(c) for c in inputs]], np.ones(h.shape[0])])
            coef = np.linalg.lstsq(design, h[:, i], rcond=None)[0]
            out.append(
                {
                    "name": f"{target}_resid",
                    "target": target,
                    "inputs": inputs,
                    "coef": [float(c) for c in coef[:-1]],
                    "intercept": float(coef[-1]),
                }
            )
    return out


def with_residuals(frame: pl.DataFrame, residuals: list[dict]) -> pl.DataFrame:
    """`frame` plus one column per residual: the feature minus its prediction from the others (null if any is)."""
    exprs = []
    for r in residuals:
        predicted = pl.lit(r["intercept"])
        for c, k in zip(r["inputs"], r["coef"], strict=True):
            predicted = predicted + pl.col(c) * k
        exprs.append((pl.col(r["target"]) - predicted).alias(r["name"]))
    return frame.with_columns(exprs)


@dataclass
class FleetScaler:
    """Model inputs from hourly gold features, the same at training and serving time (`transform`).

    Per-asset centring (units differ in size and duty) with a fleet-wide scale: a feature that failures move
    (fleet-wide, on the training assets) is centred on the asset's quantile on the healthy side of it (HEALTHY_Q if
    failures raise it, 1 - HEALTHY_Q if they lower it), so an asset that degrades for much of the frame keeps its
    degradation instead of having it absorbed into its median; other features on the median. The quantiles are
    learned once at fit time; transform reads only the features.

    The centre of a row is causal: the quantile of the asset's rows up to and including it (rows sorted by asset,
    then time), so evaluating a window uses what a score at its time would know. (Until that change every row was
    centred on its asset's whole frame, future rows included: the held-out metrics were optimistic.)

    A causal centre rests on little history in an asset's first days, and on degraded rows when an asset has
    degraded since its history began, so models fitted with `extended` inputs also see, per feature, its value
    standardised fleet-wide (absolute levels: a vibration of 9 mm/s is high on any unit), how much it moved over
    the last TREND_HOURS (`trend_hours`; nothing to centre), and once the log of the asset's hours of history
    (how far the centre can be trusted). On simulated fleets these inputs, with the boosted failure classifier
    (horizons.py), took held-out F1 for 7 days from 0.79 / 0.82 / 0.77 to 0.93 / 0.92 / 0.85 (docs/rul.md).
    Models saved without them (None / False) read the centred features only.

    `residuals` (fleet models since 2026-11-24): cross-sensor residuals of the 4 h and 24 h means, each sensor's
    mean minus its prediction from the other sensors' (a line fitted on the training assets' healthy rows), added
    as features before everything else: F1 7d 0.929 / 0.923 / 0.847 -> 0.920 / 0.937 / 0.882 (docs/rul.md)."""

    features: list[str]
    scale: list[float]
    quantiles: list[float] | None = None  # per feature; None: every feature on its median (older models)
    fleet_mean: list[float] | None = None  # absolute inputs: (x - fleet_mean) / fleet_std; None: none
    fleet_std: list[float] | None = None
    trend_hours: list[int] | None = None  # trend inputs: (x(t) - x(t - h)) / scale per h; None: none
    history: bool = False  # one input: log(1 + hours since the asset's first row)
    time_column: str | None = None  # needed by trend and history inputs
    residuals: list[dict] | None = None  # `fit_residuals`: computed first, named at the end of `features`

    @classmethod
    def fit(
        cls,
        frame: pl.DataFrame,
        id_col: str,
        features: list[str],
        healthy_q: float | None = HEALTHY_Q,
        *,
        time_col: str | None = None,
        extended: bool = False,
        residual_groups: list[list[str]] | None = None,
    ):
        """With rul_days / censored in the frame (training assets only) and a healthy_q, learns per feature
        which side is healthy; without them every feature is centred on the median. `extended` (needs
        `time_col`) adds the absolute, trend and history inputs. `residual_groups` adds cross-sensor residual
        features (`fit_residuals`), which then get every input a feature gets."""
        residuals = fit_residuals(frame, residual_groups) if residual_groups else None
        if residuals:
            frame = with_residuals(frame, residuals)
            features = [*features, *(r["name"] for r in residuals)]
        quantiles = None
        if healthy_q is not None and {"rul_days", "censored"} <= set(frame.columns):
            quantiles = healthy_quantiles(frame, id_col, features, healthy_q)
        centred = cls._centre(frame, id_col, features, quantiles, causal=True)
        scale = _spread(centred.select(pl.col(features).std()).row(0))
        if not extended:
            return cls(features, scale, quantiles, residuals=residuals)
        if time_col is None:
            raise RulDataError("fleet scaler: extended inputs need the time column, got none")
        mean = [float(m) if m is not None else 0.0 for m in frame.select(pl.col(features).mean()).row(0)]
        std = _spread(frame.select(pl.col(features).std()).row(0))
        return cls(features, scale, quantiles, mean, std, list(TREND_HOURS), True, time_col, residuals)

    @property
    def n_inputs(self) -> int:
        n = len(self.features)
        return n * (1 + (self.fleet_mean is not None) + len(self.trend_hours or ())) + int(self.history)

    @staticmethod
    def _centre(
        frame: pl.DataFrame, id_col: str, features: list[str], quantiles=None, causal: bool = False
    ) -> pl.DataFrame:
        """Features minus their per-asset quantile: over the asset's rows up to each row (`causal`; rows sorted
        by asset, then time; nulls skipped) or over all of them (fit-time analysis of the training assets)."""
        qs = quantiles or [0.5] * len(features)

        def centre(c: str, q: float) -> pl.Expr:
            if causal:
                return pl.col(c).rolling_quantile(
                    q, interpolation="linear", window_size=max(frame.height, 1), min_samples=1
                )
            return pl.col(c).quantile(q, interpolation="linear")

        return frame.with_columns([(pl.col(c) - centre(c, q).over(id_col)) for c, q in zip(features, qs, strict=True)])

    def transform(self, frame: pl.DataFrame, id_col: str) -> np.ndarray:
        """`frame` sorted by asset, then time (as `hourly` returns it) -> (rows, n_inputs) float32."""
        if self.residuals:
            frame = with_residuals(frame, self.residuals)
        centred = self._centre(frame, id_col, self.features, self.quantiles, causal=True)
        parts = [centred.select(self.features).to_numpy().astype(np.float64) / np.asarray(self.scale)]
        x = frame.select(self.features).to_numpy().astype(np.float64)
        if self.fleet_mean is not None:
            parts.append((x - np.asarray(self.fleet_mean)) / np.asarray(self.fleet_std))
        if self.trend_hours or self.history:
            if self.time_column is None or self.time_column not in frame.columns:
                raise RulDataError(f"fleet scaler: expected time column {self.time_column!r} in the frame, got none")
            if self.trend_hours:
                first = frame.select([pl.col(c).first().over(id_col) for c in self.features]).to_numpy()
                first = first.astype(np.float64)
                for hours in self.trend_hours:
                    parts.append((x - self._past(frame, id_col, hours, first)) / np.asarray(self.scale))
            if self.history:
                t = pl.col(self.time_column)
                age = frame.select(((t - t.min().over(id_col)).dt.total_seconds() / 3600.0).log1p()).to_numpy()
                parts.append(age.astype(np.float64))
        out = np.hstack(parts)
        return np.clip(np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0), -20, 20).astype(np.float32)

    def _past(self, frame: pl.DataFrame, id_col: str, hours: int, first: np.ndarray) -> np.ndarray:
        """Features at t' = the asset's last row at or before t - hours (`first`, the asset's first row, while its
        history is shorter)."""
        t = self.time_column
        past = frame.select(pl.col(id_col), (pl.col(t) + pl.duration(hours=hours)).alias("_at"), *self.features)
        keyed = frame.select(pl.col(id_col), pl.col(t))
        then = keyed.join_asof(past, left_on=t, right_on="_at", by=id_col, strategy="backward", check_sortedness=False)
        before = then.select(self.features).to_numpy().astype(np.float64)  # null (no row that old) -> NaN
        return np.where(np.isnan(before), first, before)


def _far_from_failure() -> pl.Expr:
    """Rows more than FAR_DAYS before their next failure; censored rows count by their lower bound (the simulator
    records failures up to 30 days past the window, so every censored bound is at least that)."""
    return pl.col("rul_days") > FAR_DAYS


def _spread(std: tuple) -> list[float]:
    return [float(s) if s and s > 1e-9 else 1.0 for s in std]


def healthy_quantiles(
    frame: pl.DataFrame, id_col: str, features: list[str], q: float, min_effect: float = MIN_EFFECT
) -> list[float]:
    """Per feature: q if failures raise it, 1 - q if they lower it, 0.5 if they barely move it. The shift is the
    mean of the median-centred feature over rows failing within 7 days minus that over rows more than 30 days
    from a failure, in units of its standard deviation (training rows only)."""
    centred = FleetScaler._centre(frame, id_col, features)
    near = (~pl.col("censored")) & (pl.col("rul_days") <= 7.0)
    far = _far_from_failure()
    stats = centred.select(
        *[pl.col(c).filter(near).mean().alias(f"n{i}") for i, c in enumerate(features)],
        *[pl.col(c).filter(far).mean().alias(f"f{i}") for i, c in enumerate(features)],
        *[pl.col(c).std().alias(f"s{i}") for i, c in enumerate(features)],
    ).row(0, named=True)
    out = []
    for i in range(len(features)):
        n, f, s = stats[f"n{i}"], stats[f"f{i}"], stats[f"s{i}"]
        effect = (n - f) / s if None not in (n, f, s) and s > 1e-9 else 0.0
        out.append(q if effect > min_effect else 1.0 - q if effect < -min_effect else 0.5)
    return out


def trajectories(frame: pl.DataFrame, x: np.ndarray, id_col: str) -> list[Trajectory]:
    """One trajectory per asset (rows in time order), with rul_days / censored when the frame has them."""
    ids = frame[id_col].to_numpy()
    rul = frame["rul_days"].to_numpy().astype(np.float32) if "rul_days" in frame.columns else None
    censored = frame["censored"].to_numpy() if "censored" in frame.columns else None
    out = []
    for asset in pd_unique(ids):
        m = ids == asset
        cens = None if censored is None else censored[m]
        out.append(Trajectory(str(asset), x[m], None if rul is None else rul[m], censored=cens))
    return out


def pd_unique(values: np.ndarray) -> list:
    """Unique values in first-seen order."""
    _, first = np.unique(values, return_index=True)
    return list(values[np.sort(first)])


def split_assets(assets: list[str], held_out_fraction: float, seed: int = 7) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    shuffled = list(rng.permutation(sorted(assets)))
    n_out = max(1, int(round(len(assets) * held_out_fraction)))
    if len(assets) - n_out < 2:
        raise RulDataError(f"fleet RUL training: expected at least 3 assets for a held-out split, got {len(assets)}")
    return sorted(shuffled[n_out:]), sorted(shuffled[:n_out])

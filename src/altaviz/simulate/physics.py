"""Signal-model interface of the simulator, and the generic model used for any profile.

A `SignalModel` turns per-asset parameters and the time grid into healthy sensor signals (float32 arrays of
the grid's shape (day, asset, slot)) and declares the failure modes it knows. Failure modes are data: per
affected sensor an `Effect` scaled by a degradation severity that grows from 0 at onset to 1 at failure. Only
`compressor.py` names sensors; everything here reads names, bands and thresholds from the profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from altaviz.profiles.model import Profile, Threshold
from altaviz.simulate.grid import Grid

DAY_S = 86_400.0
F32 = np.float32


@dataclass(frozen=True)
class Effect:
    """How a failure mode moves one sensor at severity s in [0, 1], with `amount` drawn from [low, high].

    add: x += amount * s      mul: x *= 1 + amount * s      to: x += (amount - baseline) * s (reach a level)
    """

    sensor: str
    kind: Literal["add", "mul", "to"]
    low: float
    high: float


@dataclass(frozen=True)
class FailureMode:
    name: str
    weight: float
    onset_days: tuple[float, float]  # degradation starts this long before the failure
    curvature: float  # 0: linear ramp; larger: exponential (slow start, fast end)
    effects: tuple[Effect, ...]
    repair_note: str

    def severity_at(self, days_before: float, lead_days: float) -> float:
        """Degradation severity in [0, 1] `days_before` the failure of an event whose onset lead is `lead_days`."""
        return float(severity(np.array([1.0 - days_before / lead_days]), np.array([self.curvature]))[0])


def severity(frac: np.ndarray, curvature: np.ndarray) -> np.ndarray:
    """Severity at fraction `frac` of the way from onset (0) to failure (1): linear for curvature 0, else
    expm1(c * frac) / expm1(c) (slow start, fast end)."""
    frac = np.clip(frac, 0.0, 1.0)
    bent = np.maximum(curvature, 1e-6)
    return np.where(curvature > 1e-6, np.expm1(bent * frac) / np.expm1(bent), frac)


@dataclass
class Context:
    """What a signal model may use: the time grid and per-asset parameters."""

    profile: Profile
    grid: Grid
    epoch_s: np.ndarray  # (days, 1, slots) float64 epoch seconds
    ratings: dict[str, np.ndarray]  # metadata column -> (A,) float64, for sensors with `relative_to`
    latitude: np.ndarray  # (A,)
    longitude: np.ndarray  # (A,)

    @property
    def assets(self) -> int:
        return len(self.latitude)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.grid.shape

    def col(self, values: np.ndarray | float) -> np.ndarray:
        """Per-asset values as (1, A, 1) float32."""
        return self.grid.per_asset(values)


@dataclass
class Healthy:
    signals: dict[str, np.ndarray]  # sensor -> grid-shaped float32
    baseline: dict[str, np.ndarray]  # sensor -> (A,) nominal healthy level (for `to` effects)


class SignalModel(Protocol):
    modes: tuple[FailureMode, ...]
    decimals: dict[str, int]

    def catalog(self) -> list[tuple[str, float]]:
        """(model name, rating) pairs the fleet draws from."""
        ...

    def healthy(self, ctx: Context, rng: np.random.Generator) -> Healthy: ...


def wave(ctx: Context, period_s: float | np.ndarray, phase: np.ndarray, amp: np.ndarray) -> np.ndarray:
    """amp * sin(2 pi t / period + phase) as a grid-shaped float32 array, with per-asset amplitude and phase
    and a shared or per-asset period. A shared period uses sin(a + b) = sin a cos b + cos a sin b, so the sine
    is evaluated per slot only."""
    if np.ndim(period_s) == 0:
        arg = np.mod(ctx.epoch_s, float(period_s)) * (2.0 * np.pi / float(period_s))
        out = ctx.col(amp * np.cos(phase)) * np.sin(arg).astype(F32)
        out += ctx.col(amp * np.sin(phase)) * np.cos(arg).astype(F32)
        return out
    rel = (ctx.epoch_s - ctx.grid.start_s).astype(F32)
    out = rel * ctx.col(2.0 * np.pi / np.asarray(period_s))
    out += ctx.col(phase)
    np.sin(out, out=out)
    out *= ctx.col(amp)
    return out


def noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Unit-variance sensor noise, float32, bounded at +-2.45 sigma (triangular: the sum of two 16-bit
    uniforms cut from the generator's raw 64-bit output, about 3x faster than normal draws), so healthy data
    stays clear of 4-sigma outlier checks."""
    n = int(np.prod(shape))
    halves = rng.bit_generator.random_raw((n + 1) // 2).view(np.uint16)[: 2 * n].reshape(2, n)
    z = halves[0].astype(F32)
    z += halves[1]
    z *= F32(np.sqrt(6.0) / 65535.0)
    z -= F32(np.sqrt(6.0))
    return z.reshape(shape)


def load_cycle(ctx: Context, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-asset operating load in about [0.6, 0.93]: a dominant diurnal demand cycle, a weaker few-hour cycle
    and a multi-day swell. The diurnal cycle dominating keeps each day's distribution near-symmetric, so
    healthy data never trips a per-asset-per-day 4-sigma outlier check. Returns (load (grid-shaped), nominal
    load (A,)).
    """
    a = ctx.assets
    base = rng.uniform(0.72, 0.80, a)
    local = ctx.longitude / 15.0 * 3600.0  # solar-time offset in seconds
    phase = 2 * np.pi * local / DAY_S + rng.uniform(0, 2 * np.pi, a)
    load = wave(ctx, DAY_S, phase, rng.uniform(0.06, 0.08, a))
    load += wave(ctx, rng.uniform(6, 12, a) * 3600.0, rng.uniform(0, 2 * np.pi, a), rng.uniform(0.015, 0.025, a))
    load += wave(ctx, rng.uniform(2, 5, a) * DAY_S, rng.uniform(0, 2 * np.pi, a), rng.uniform(0.01, 0.02, a))
    load += ctx.col(base)
    return load, base


class GenericModel:
    """Any profile: each sensor moves with the load cycle inside its normal band; one drift mode per sensor
    (towards its critical, else warning, threshold; else 30 % up)."""

    def __init__(self, profile: Profile, sensors: list[str] | None = None) -> None:
        self.profile = profile
        self.sensors = sensors if sensors is not None else profile.sensor_names
        self.decimals = dict.fromkeys(self.sensors, 3)
        modes = []
        for name in self.sensors:
            spec = profile.sensors[name]
            target = _drift_target(spec.critical) or _drift_target(spec.warning)
            if target is None or spec.relative_to is not None:
                effect = Effect(name, "mul", 0.25, 0.35)
            else:
                effect = Effect(name, "to", target, target)
            modes.append(FailureMode(f"{name}_drift", 1.0, (10.0, 20.0), 1.5, (effect,), f"repaired {name} drift"))
        self.modes = tuple(modes)

    def catalog(self) -> list[tuple[str, float]]:
        return [(f"{self.profile.name.title()} Mk{i}", r) for i, r in ((1, 1000.0), (2, 1500.0), (3, 2000.0))]

    def healthy(self, ctx: Context, rng: np.random.Generator) -> Healthy:
        load, base = load_cycle(ctx, rng)
        swing = (load - ctx.col(base)) / F32(0.125)  # about [-1, 1]
        signals, baseline = {}, {}
        for name in self.sensors:
            spec = self.profile.sensors[name]
            lo, hi = spec.normal_band
            scale = ctx.ratings[spec.relative_to] if spec.relative_to else np.ones(ctx.assets)
            width = (hi - lo) * scale
            center = (lo + (hi - lo) * rng.uniform(0.4, 0.6, ctx.assets)) * scale
            sign = rng.choice([-1.0, 1.0], ctx.assets)
            x = swing * ctx.col(0.15 * sign * width)
            x += ctx.col(center)
            x += ctx.col(0.02 * width) * noise(rng, x.shape)
            signals[name], baseline[name] = x, center
        return Healthy(signals, baseline)


def _drift_target(threshold: Threshold | None) -> float | None:
    if threshold is None:
        return None
    return threshold.high if threshold.high is not None else threshold.low


def limit_daily_outliers(signal: np.ndarray, alive: np.ndarray, weight: np.ndarray, sigma: float = 3.5) -> None:
    """Pull the rare reading more than `sigma` standard deviations from its asset-day mean back to that bound,
    in place (grid-shaped arrays; statistics over alive cells, `weight` = alive as float32). Unlucky overlaps
    of cycles, noise and a failure ramp otherwise put about one reading in 10^5 near 4 sigma; with this guard
    the simulated physics never trips a per-asset-per-day 4-sigma outlier check, which then flags only the
    injected spikes."""
    n = weight.sum(axis=2, keepdims=True)
    dev = signal * weight
    mean = dev.sum(axis=2, keepdims=True) / np.maximum(n, F32(1.0))
    np.subtract(signal, mean, out=dev)
    dev *= dev
    dev *= weight
    var = dev.sum(axis=2, keepdims=True) / np.maximum(n - F32(1.0), F32(1.0))
    half = np.where(n >= 3, F32(sigma) * np.sqrt(var), F32(np.inf))
    np.clip(signal, mean - half, mean + half, out=signal)

"""Compressor physics: the only module that names the compressor profile's sensors.

A natural-gas reciprocating compressor (two stages, gas-engine or electric driver) on a gathering station:

- load: field supply drives suction pressure; throughput and horsepower follow the load and the pressure ratio
- discharge pressure: pipeline pressure with a diurnal demand swing, slightly up with throughput
- discharge temperature: polytropic compression per stage, T_d = T_s * r_stage ** m, with the suction (cooler
  outlet) temperature following the ambient diurnal/seasonal cycle of the asset's basin
- horsepower: GPSA rule of thumb, BHP = 22 * r_stage * stages * 1.08 * MMscf/d, against the unit's rating
- vibration: frame velocity rising slightly with load

Failure modes, their P-F interval (onset lead: degradation starts this many days before the failure) and their
effects at failure (most units cross a warning or critical threshold before failing):

- bearing wear, 14-30 days: vibration grows exponentially (curvature 3) into the 11.2 mm/s critical zone
- valve failure, 10-16 days: discharge temperature +60-75 degF (recompression of leaked-back gas), flow -25-35 %
- cooler fouling, 20-30 days: slow, near-linear (curvature 0.5) discharge temperature creep of +60-75 degF
- packing / ring leak, 12-24 days: suction and discharge pressure and flow down, horsepower +12-18 %,
  temperature +40-55 degF

Every lead is comfortably above 7 days and every curvature is mild enough that a mode is already visible 7 days
before its failure (severity there >= 0.16 of the full effect; `severity_at`): a 7-day failure warning is
physically possible, as on real compressors (vibration trends and fouling show weeks ahead, valves days to weeks).
"""

from __future__ import annotations

import numpy as np

from altaviz.profiles.model import Profile
from altaviz.simulate.physics import DAY_S, Context, Effect, FailureMode, Healthy, load_cycle, noise, wave

VIB = "vibration_mms"
TEMP = "discharge_temp_f"
SUCTION = "suction_pressure_psi"
DISCHARGE = "discharge_pressure_psi"
HP = "horsepower"
FLOW = "gas_flow_mcfd"
SENSORS = (VIB, TEMP, SUCTION, DISCHARGE, HP, FLOW)

ATM_PSI = 14.7
STAGES = 2
GPSA_BHP = 22.0 * STAGES * 1.08  # BHP per MMscf/d per unit of stage ratio

# Package models (compressor frame or gas-engine driver) and their rated brake horsepower.
CATALOG: list[tuple[str, float]] = [
    ("Ariel JGJ/4", 1380.0),
    ("Ariel JGK/4", 1775.0),
    ("Ariel JGT/4", 1900.0),
    ("Ariel JGE/4", 2370.0),
    ("Ariel JGC/4", 2500.0),
    ("Ariel JGJ/2", 1150.0),
    ("Caterpillar G3516B", 1380.0),
    ("Caterpillar G3606", 1775.0),
    ("Caterpillar G3608", 2370.0),
]

MODES: tuple[FailureMode, ...] = (
    FailureMode(
        "bearing_wear",
        0.30,
        (14.0, 30.0),
        3.0,
        (Effect(VIB, "to", 11.3, 11.9), Effect(TEMP, "add", 2.0, 6.0)),
        "replaced main and crosshead bearings; realigned coupling",
    ),
    FailureMode(
        "valve_failure",
        0.30,
        (10.0, 16.0),
        1.5,
        (
            Effect(TEMP, "add", 60.0, 75.0),
            Effect(FLOW, "mul", -0.35, -0.25),
            Effect(HP, "mul", -0.06, -0.03),
            Effect(VIB, "add", 0.4, 0.9),
        ),
        "replaced broken discharge valve plates and springs",
    ),
    FailureMode(
        "cooler_fouling",
        0.20,
        (20.0, 30.0),
        0.5,
        (Effect(TEMP, "add", 60.0, 75.0), Effect(HP, "mul", 0.02, 0.04), Effect(FLOW, "mul", -0.06, -0.03)),
        "cleaned fouled cooler tube bundle and fins",
    ),
    FailureMode(
        "packing_leak",
        0.20,
        (12.0, 24.0),
        1.5,
        (
            Effect(SUCTION, "mul", -0.12, -0.08),
            Effect(DISCHARGE, "mul", -0.10, -0.06),
            Effect(FLOW, "mul", -0.28, -0.18),
            Effect(HP, "mul", 0.12, 0.18),
            Effect(TEMP, "add", 40.0, 55.0),
        ),
        "replaced piston rings and rod packing",
    ),
)


def applies(profile: Profile) -> bool:
    """True when the profile has every compressor sensor (extra sensors fall back to the generic model)."""
    return set(SENSORS) <= set(profile.sensor_names) and profile.sensors[HP].relative_to is not None


def ambient_f(ctx: Context, rng: np.random.Generator) -> np.ndarray:
    """Ambient air temperature (degF, grid-shaped): basin climate from latitude, season, 15:00 local peak."""
    lat = ctx.latitude
    annual = 100.0 - 1.2 * lat + rng.normal(0.0, 1.5, ctx.assets)
    seasonal_amp = 0.55 * lat - 2.0
    doy = (ctx.epoch_s / DAY_S) % 365.2425
    seasonal = -np.cos(2 * np.pi * (doy - 15.0) / 365.2425)  # coldest mid-January
    local = ctx.longitude / 15.0 * 3600.0
    out = wave(ctx, DAY_S, 2 * np.pi * (local - 9 * 3600.0) / DAY_S, rng.uniform(8.0, 13.0, ctx.assets))
    out += ctx.col(seasonal_amp) * seasonal.astype(np.float32)
    out += ctx.col(annual)
    return out


class CompressorModel:
    modes = MODES
    decimals = {VIB: 2, TEMP: 1, SUCTION: 1, DISCHARGE: 1, HP: 1, FLOW: 1}

    def __init__(self, profile: Profile) -> None:
        self.rating_column = profile.sensors[HP].relative_to

    def catalog(self) -> list[tuple[str, float]]:
        return list(CATALOG)

    def healthy(self, ctx: Context, rng: np.random.Generator) -> Healthy:
        """Float32 grid-shaped signals, computed in place (4.5 M readings take about half a second)."""
        a = ctx.assets
        rated = ctx.ratings[self.rating_column]
        load, load0 = load_cycle(ctx, rng)
        dload = load - ctx.col(load0)
        shape = ctx.shape

        ps0 = rng.uniform(65.0, 100.0, a)
        suction = dload * np.float32(0.6)
        suction += np.float32(1.0)
        suction *= ctx.col(ps0)
        suction += np.float32(0.6) * noise(rng, shape)

        pd0 = rng.uniform(930.0, 1070.0, a)
        local = ctx.longitude / 15.0 * 3600.0
        discharge = wave(ctx, DAY_S, 2 * np.pi * (local - 2 * 3600.0) / DAY_S, rng.uniform(12.0, 25.0, a))
        discharge += ctx.col(pd0)
        discharge += np.float32(200.0) * dload
        discharge += np.float32(3.0) * noise(rng, shape)

        stage = (discharge + np.float32(ATM_PSI)) / (suction + np.float32(ATM_PSI))
        np.sqrt(stage, out=stage)  # per-stage ratio, about 3.0-3.6
        stage0 = np.sqrt((pd0 + ATM_PSI) / (ps0 + ATM_PSI))

        eff = rng.uniform(0.96, 1.04, a)  # unit-to-unit efficiency
        hp0 = rated * load0
        q0 = hp0 / (GPSA_BHP * stage0 * eff) * 1000.0  # Mcf/d at nominal load and ratio
        flow = ctx.col(stage0) / stage
        np.sqrt(flow, out=flow)
        flow *= load
        flow *= ctx.col(q0 / load0)
        horsepower = flow * stage
        horsepower *= ctx.col(eff * GPSA_BHP / 1000.0)
        flow *= np.float32(0.008) * noise(rng, shape) + np.float32(1.0)
        horsepower *= np.float32(0.006) * noise(rng, shape) + np.float32(1.0)

        m = rng.uniform(0.16, 0.185, a)
        temp = np.log(stage)
        temp *= ctx.col(m)
        np.exp(temp, out=temp)
        t_suction = ambient_f(ctx, rng)  # cooler outlet: 95 degF at 65 degF ambient, 0.5 degF per degF
        t_suction -= np.float32(65.0)
        t_suction *= np.float32(0.5)
        t_suction += np.float32(95.0 + 459.67)
        temp *= t_suction
        temp -= np.float32(459.67)
        temp += np.float32(40.0) * dload
        temp += noise(rng, shape)

        vib0 = rng.uniform(1.8, 3.2, a)
        vib = dload.copy()
        vib += np.float32(1.0)
        vib *= ctx.col(vib0)
        vib += np.float32(0.06) * noise(rng, shape)

        signals = {VIB: vib, TEMP: temp, SUCTION: suction, DISCHARGE: discharge, HP: horsepower, FLOW: flow}
        t0 = (95.0 + 459.67) * stage0**m - 459.67
        baseline = {VIB: vib0, TEMP: t0, SUCTION: ps0, DISCHARGE: pd0, HP: hp0, FLOW: q0}
        return Healthy(signals, baseline)

"""The simulated fleet as frames: determinism, metadata, failures and their signatures, clean mode."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from altaviz.profiles import parse_profile
from altaviz.simulate import FaultRates, SimulationError, default_start, simulate_fleet
from altaviz.simulate.compressor import CATALOG, MODES
from altaviz.simulate.events import CENSOR_DAYS, schedule
from altaviz.simulate.fleet import BASINS

from .conftest import START, STEP

ID, TS = "compressor_id", "timestamp"
SENSORS = [
    "vibration_mms",
    "discharge_temp_f",
    "suction_pressure_psi",
    "discharge_pressure_psi",
    "horsepower",
    "gas_flow_mcfd",
]


def test_same_seed_same_frames_and_different_seed_differs(profile):
    a = simulate_fleet(profile, 8, 3, STEP, 5, start=START)
    b = simulate_fleet(profile, 8, 3, STEP, 5, start=START)
    c = simulate_fleet(profile, 8, 3, STEP, 6, start=START)
    for name in ("metadata", "readings", "routing", "failures", "maintenance", "stuck"):
        assert getattr(a, name).equals(getattr(b, name)), name
    assert a.fault_counts == b.fault_counts
    assert not a.readings.equals(c.readings)
    assert not a.metadata.equals(c.metadata)


def test_metadata_columns_ids_and_places(profile, default_fleet):
    meta = default_fleet.metadata
    assert meta.columns == list(profile.asset.metadata)
    assert meta[ID].to_list() == [f"COMP-{i:04d}" for i in range(1, 11)]
    models = dict(CATALOG)
    for model, hp in zip(meta["model"], meta["rated_horsepower"], strict=True):
        assert re.match(r"^(Ariel JG[A-Z]/\d|Caterpillar G\d{4}[A-Z]?)$", model)
        assert models[model] == hp
    assert meta.schema["install_date"] == pl.Date
    assert all(re.match(r"^STN-\d{2}$", s) for s in meta["station_id"])
    sizes = meta.group_by("station_id").len()["len"].to_list()
    assert max(sizes) <= 5 and sorted(sizes)[1:] == [s for s in sorted(sizes)[1:] if s >= 3]
    centers = np.array([b[1] for b in BASINS])
    for lat, lon in zip(meta["latitude"], meta["longitude"], strict=True):
        assert np.min(np.hypot(centers[:, 0] - lat, centers[:, 1] - lon)) < 1.0


def test_default_run_has_at_least_two_failing_units(profile, default_fleet):
    assert len(default_fleet.failing_assets) >= 2
    now_default = simulate_fleet(profile, 10, 7, STEP, 42)  # the CLI default (window ends today)
    assert len(now_default.failing_assets) >= 2


def test_default_start_is_midnight_days_ago():
    start = default_start(7)
    assert start.tzinfo is not None and (start.hour, start.minute, start.second) == (0, 0, 0)
    assert start.date() == datetime.now(UTC).date() - timedelta(days=7)


def test_about_a_quarter_of_a_large_fleet_fails_within_a_week():
    rng = np.random.default_rng(3)
    start = int(START.timestamp())
    end = start + 7 * 86_400
    events = schedule(MODES, 5000, start, end, rng, min_failing=2)
    failing = np.unique(events.asset[events.failure < end]).size
    assert 0.20 <= failing / 5000 <= 0.30
    assert (events.failure >= end).any()  # right-censored failures exist
    lead = events.failure - events.onset
    lo = np.array([m.onset_days[0] for m in MODES])[events.mode] * 86_400
    hi = np.array([m.onset_days[1] for m in MODES])[events.mode] * 86_400
    assert ((lead >= lo - 1) & (lead <= hi + 1)).all()
    assert lead.min() >= 10 * 86_400 - 1  # a 7-day warning is physically possible for every failure
    assert (events.onset < start).any() and (events.failure[events.onset < start] >= start).all()
    # after a repair the next onset comes later (the repair of event i is before the onset of event i + 1)
    same = events.asset[1:] == events.asset[:-1]
    assert same.any() and (events.onset[1:][same] > events.repaired[:-1][same]).all()


def test_onset_leads_and_curvatures_leave_a_visible_7_day_warning():
    assert CENSOR_DAYS >= max(m.onset_days[1] for m in MODES)  # every visible degradation has its failure
    for m in MODES:
        lo, hi = m.onset_days
        assert 10.0 <= lo < hi <= 30.0, m.name
        assert m.severity_at(7.0, lo) >= 0.15, m.name  # already visible a week out, even at the shortest lead
        assert m.severity_at(0.0, lo) == pytest.approx(1.0) and m.severity_at(lo, lo) == pytest.approx(0.0)
    bearing = next(m for m in MODES if m.name == "bearing_wear")
    fouling = next(m for m in MODES if m.name == "cooler_fouling")
    assert bearing.severity_at(11.0, 22.0) < 0.25  # exponential: slow start, fast end
    assert fouling.severity_at(12.5, 25.0) > 0.4  # slow, near-linear creep


def test_degradation_is_visible_a_week_before_failure(profile):
    kw = {"start": START, "faults": FaultRates.none()}
    fleet = simulate_fleet(profile, 60, 21, timedelta(minutes=30), 4, **kw)
    healthy = simulate_fleet(profile, 60, 21, timedelta(minutes=30), 4, failures=False, **kw)
    d = _deltas(fleet, healthy)
    week = fleet.failures.filter(
        (pl.col("failure_time") < fleet.end)
        & (pl.col("failure_time") - timedelta(days=7) >= pl.lit(fleet.end - timedelta(days=21)))
    )
    seen = set()
    for ev in week.iter_rows(named=True):
        at = ev["failure_time"] - timedelta(days=7)
        rows = d.filter((pl.col(ID) == ev[ID]) & pl.col(TS).is_between(at - timedelta(hours=2), at))
        if not rows.height:
            continue
        mode, seen = ev["failure_mode"], seen | {ev["failure_mode"]}
        if mode == "bearing_wear":
            assert rows["d_vibration_mms"].min() > 1.0
        elif mode == "valve_failure":
            assert rows["d_discharge_temp_f"].min() > 8 and rows["r_gas_flow_mcfd"].max() < 0.97
        elif mode == "cooler_fouling":
            assert rows["d_discharge_temp_f"].min() > 30
        else:
            assert rows["r_gas_flow_mcfd"].max() < 0.97 and rows["r_horsepower"].min() > 1.02
    assert seen == {m.name for m in MODES}


def _deltas(fleet, healthy) -> pl.DataFrame:
    joined = fleet.readings.join(healthy.readings, on=[ID, TS], suffix="_h")
    return joined.with_columns(
        *[(pl.col(s) - pl.col(f"{s}_h")).alias(f"d_{s}") for s in SENSORS],
        *[(pl.col(s) / pl.col(f"{s}_h")).alias(f"r_{s}") for s in SENSORS],
    )


def test_each_failure_mode_has_its_signature(big_fleet, big_healthy):
    d = _deltas(big_fleet, big_healthy)
    failures = big_fleet.failures.filter(pl.col("failure_time") < big_fleet.end)
    assert set(failures["failure_mode"]) == {
        "bearing_wear",
        "valve_failure",
        "cooler_fouling",
        "packing_leak",
    }
    for ev in failures.iter_rows(named=True):
        rows = d.filter((pl.col(ID) == ev[ID]) & (pl.col(TS) < ev["failure_time"]))
        last = rows.filter(pl.col(TS) >= ev["failure_time"] - timedelta(minutes=30)).tail(1).row(0, named=True)
        early = rows.filter(pl.col(TS) <= ev["onset_time"] + timedelta(hours=3))
        mode = ev["failure_mode"]
        if early.height:  # right after onset the unit still reads (nearly) healthy
            assert early["d_vibration_mms"].abs().max() < 0.3 and early["d_discharge_temp_f"].abs().max() < 3
        if mode == "bearing_wear":
            assert last["vibration_mms"] >= 10.5  # at the 11.2 mm/s critical zone
            assert last["d_vibration_mms"] > 6.0 and abs(last["d_gas_flow_mcfd"]) < 1e-9
        elif mode == "valve_failure":
            assert last["d_discharge_temp_f"] > 30 and last["r_gas_flow_mcfd"] < 0.78
        elif mode == "cooler_fouling":
            assert last["d_discharge_temp_f"] > 40 and abs(last["d_vibration_mms"]) < 1e-9
            assert 0.9 < last["r_gas_flow_mcfd"] < 1.0
        else:  # packing / ring leak
            assert last["r_suction_pressure_psi"] < 0.93 and last["r_discharge_pressure_psi"] < 0.95
            assert last["r_gas_flow_mcfd"] < 0.83 and last["r_horsepower"] > 1.09
        for s in SENSORS:  # within physical ranges all along
            lo, hi = big_fleet.profile.sensors[s].physical_range
            assert lo <= rows[s].min() and rows[s].max() <= hi


def test_repair_resets_the_unit_and_downtime_has_no_readings(big_fleet, big_healthy):
    d = _deltas(big_fleet, big_healthy)
    m = big_fleet.maintenance.join(big_fleet.failures, on=ID)
    m = m.filter(
        (pl.col("failure_time") < pl.col("maintenance_time"))
        & (pl.col("maintenance_time") - pl.col("failure_time") < timedelta(hours=7))
    )
    assert m.height > 10
    for ev in m.iter_rows(named=True):
        asset = d.filter(pl.col(ID) == ev[ID])
        down = asset.filter(pl.col(TS).is_between(ev["failure_time"], ev["maintenance_time"], closed="left"))
        assert down.height == 0
        after = asset.filter(pl.col(TS) >= ev["maintenance_time"])
        after = after.filter(pl.col(TS) < pl.lit(big_fleet.end))
        nxt = big_fleet.failures.filter((pl.col(ID) == ev[ID]) & (pl.col("onset_time") > ev["maintenance_time"]))
        if nxt.height:
            after = after.filter(pl.col(TS) < nxt["onset_time"].min())
        assert all(after[f"d_{s}"].abs().max() in (None, 0.0) for s in SENSORS)


def test_degradation_passes_a_per_asset_day_4_sigma_check(big_fleet):
    r = big_fleet.readings.with_columns(pl.col(TS).dt.date().alias("date"))
    z = r.select(
        ID,
        "date",
        *[
            ((pl.col(s) - pl.col(s).mean().over(ID, "date")).abs() / pl.col(s).std().over(ID, "date")).alias(s)
            for s in SENSORS
        ],
    )
    assert z.select(pl.max_horizontal(SENSORS).max()).item() < 4.0


def test_every_reading_before_a_failure_has_a_nonnegative_rul(default_fleet):
    f = default_fleet
    known = f.readings.filter(pl.col(ID).is_in(f.metadata[ID].implode()) & (pl.col(TS) < f.end)).sort(ID, TS)
    fail = f.failures.select(ID, pl.col("failure_time").alias("next_failure")).sort(ID, "next_failure")
    rul = known.sort(TS).join_asof(
        fail.sort("next_failure"),
        left_on=TS,
        right_on="next_failure",
        by=ID,
        strategy="forward",
        check_sortedness=False,
    )
    failing = rul.filter(pl.col("next_failure").is_not_null())
    assert failing.height > 0
    assert (failing["next_failure"] >= failing[TS]).all()
    assert failing.filter(pl.col(ID).is_in(f.failing_assets)).height > 0


def test_clean_mode_has_no_faults(profile):
    f = simulate_fleet(profile, 12, 3, STEP, 9, start=START, faults=FaultRates.none())
    assert set(f.fault_counts) == {
        "nulls",
        "spikes",
        "duplicates",
        "out_of_order",
        "late",
        "stuck",
        "future",
        "unknown_assets",
        "malformed",
    }
    assert all(v == 0 for v in f.fault_counts.values())
    r = f.readings
    assert r.null_count().sum_horizontal().item() == 0
    assert r.select(ID, TS).is_duplicated().sum() == 0
    assert set(r[ID]) <= set(f.metadata[ID])
    assert (r[TS] < f.end).all() and (r[TS] >= f.start).all()
    for s in SENSORS:
        lo, hi = profile.sensors[s].physical_range
        assert r[s].is_between(lo, hi).all()
    assert (f.routing["file_date"] == r[TS].dt.date()).all()
    # file order: by date, then asset, then time, strictly
    key = r.with_columns(f.routing["file_date"]).select("file_date", ID, TS)
    assert key.equals(key.sort("file_date", ID, TS))
    assert f.stuck.height == 0 and (f.routing["malformed"] == 0).all()


def test_faults_leave_the_other_readings_untouched(profile, default_fleet):
    clean = simulate_fleet(profile, 10, 7, STEP, 42, start=START, faults=FaultRates.none())
    assert clean.failures.equals(default_fleet.failures)
    dirty = default_fleet.readings.unique([ID, TS], keep="first", maintain_order=True)
    j = dirty.join(clean.readings, on=[ID, TS], suffix="_c")
    assert j.height == clean.readings.height
    changed = j.filter(pl.any_horizontal([pl.col(s).ne_missing(pl.col(f"{s}_c")) for s in SENSORS])).height
    c = default_fleet.fault_counts
    assert c["nulls"] + c["spikes"] <= changed <= c["nulls"] + c["spikes"] + c["stuck"]


def test_future_timestamps_are_far_ahead(profile, default_fleet):
    fut = default_fleet.readings.filter(pl.col(TS) > default_fleet.end)
    assert fut.height == default_fleet.fault_counts["future"] > 0
    assert (fut[TS].dt.year() >= 2099).all()  # explicit start: independent of the wall clock
    now_based = simulate_fleet(profile, 10, 2, STEP, 1)
    fut = now_based.readings.filter(pl.col(TS) > now_based.end)
    assert fut.height > 0 and (fut[TS] >= datetime.now(UTC) + timedelta(days=29)).all()


def test_fault_rates_validation():
    assert all(v == 0 for v in vars(FaultRates.none()).values())
    with pytest.raises(SimulationError, match="nulls"):
        FaultRates(nulls=1.5)
    with pytest.raises(SimulationError, match="future"):
        FaultRates(future=-1)


@pytest.mark.parametrize("kwargs", [{"assets": 0}, {"days": 0}, {"interval": timedelta(seconds=1.5)}])
def test_bad_arguments_are_rejected(profile, kwargs):
    args = {"assets": 2, "days": 1, "interval": STEP, "seed": 1} | kwargs
    with pytest.raises(SimulationError):
        simulate_fleet(profile, **args)


PUMP = """
name: pump
asset:
  id_column: pump_id
  id_prefix: PMP-
  metadata_file: pumps.csv
  metadata: {pump_id: string, model: string, rated_kw: float64, site_id: string, commissioned: date}
time_column: ts
sensors:
  bearing_temp_c: {unit: degC, physical_range: [-20, 200], normal_band: [40, 70], critical: {high: 95}}
  power_kw: {unit: kW, physical_range: [0, 5000], normal_band: [0.4, 0.9], relative_to: rated_kw}
"""


def test_any_profile_works_without_compressor_names():
    pump = parse_profile(PUMP, "pump.yaml")
    f = simulate_fleet(pump, 12, 7, timedelta(minutes=15), 3, start=START)
    assert f.metadata.columns == ["pump_id", "model", "rated_kw", "site_id", "commissioned"]
    assert f.readings.columns == ["pump_id", "ts", "bearing_temp_c", "power_kw"]
    assert f.failures.columns[:2] == ["pump_id", "failure_mode"] and f.failures.height > 0
    assert f.failures["failure_mode"].is_in(["bearing_temp_c_drift", "power_kw_drift"]).all()


def test_mid_day_start_and_odd_interval(profile):
    start = datetime(2026, 3, 2, 6, 30, tzinfo=UTC)
    step = timedelta(minutes=7)
    f = simulate_fleet(profile, 5, 2, step, 2, start=start, faults=FaultRates.none(), failures=False)
    steps = -(-2 * 86_400 // 420)
    assert f.readings.height == 5 * steps
    ts = f.readings.filter(pl.col(ID) == "COMP-0003")[TS].sort()
    assert ts[0] == start and ts[-1] < f.end and (ts.diff().drop_nulls() == step).all()
    assert (f.routing["file_date"] == f.readings[TS].dt.date()).all()
    assert f.routing["file_date"].n_unique() == 3  # a partial first and last day

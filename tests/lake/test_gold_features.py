"""Gold features against hand-computed values on tiny frames: window edges, gaps, rates, statuses."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from altaviz.engines.polars_engine import build_features
from altaviz.lake.schema import gold_schema, silver_schema
from altaviz.profiles import feature_spec, load_profile

P = load_profile("compressor")
T0 = datetime(2026, 3, 7, 22, 0, tzinfo=UTC)  # a Saturday
BASE = {
    "vibration_mms": 3.0,
    "discharge_temp_f": 220.0,
    "suction_pressure_psi": 80.0,
    "discharge_pressure_psi": 1000.0,
    "horsepower": 1200.0,
    "gas_flow_mcfd": 9000.0,
}


def silver(rows: list[tuple[str, int, dict]]) -> pl.DataFrame:
    """rows: (asset, minutes after T0, overrides)."""
    out = []
    for asset, minutes, over in rows:
        ts = T0 + timedelta(minutes=minutes)
        out.append(
            {
                "compressor_id": asset,
                "timestamp": ts,
                **BASE,
                **over,
                "model": "m",
                "rated_horsepower": 1500.0,
                "install_date": date(2020, 1, 1),
                "station_id": "S",
                "latitude": 0.0,
                "longitude": 0.0,
                "is_stuck": False,
                "_source_file": "f",
                "_batch_id": "b",
                "_ingested_at": T0,
                "date": ts.date(),
            }
        )
    return pl.DataFrame(out, schema=silver_schema(P))


def vib(values_at: list[tuple[int, float]], asset: str = "A") -> list[tuple[str, int, dict]]:
    return [(asset, m, {"vibration_mms": v}) for m, v in values_at]


def test_columns_follow_the_spec_and_schema():
    g = build_features(silver(vib([(0, 1.0)])), P)
    spec = feature_spec(P)
    assert g.columns == gold_schema(P).names()
    assert set(spec.columns) <= set(g.columns)
    assert "vibration_mms_1h_mean" in g.columns and "gas_flow_mcfd_24h_max" in g.columns
    assert len(spec.rolling) == 6 * 3 * 3


def test_time_window_is_right_closed_and_time_based():
    # readings at 0, 10, 30, 60, 70 minutes; the 1h window at t=60 is (0, 60] -> 10, 30, 60
    g = build_features(silver(vib([(0, 1.0), (10, 2.0), (30, 4.0), (60, 8.0), (70, 16.0)])), P)
    g = g.sort("timestamp")
    assert g["vibration_mms_1h_mean"].to_list() == pytest.approx([1.0, 1.5, 7 / 3, 14 / 3, 28 / 3])
    assert g["vibration_mms_1h_max"].to_list() == [1.0, 2.0, 4.0, 8.0, 16.0]
    # sample std (ddof=1); null with a single reading
    assert g["vibration_mms_1h_std"][0] is None
    assert g["vibration_mms_1h_std"][1] == pytest.approx(math.sqrt(0.5))
    assert g["vibration_mms_1h_std"][3] == pytest.approx(
        math.sqrt(((2 - 14 / 3) ** 2 + (4 - 14 / 3) ** 2 + (8 - 14 / 3) ** 2) / 2)
    )
    # the 4h window at t=70 still sees all five
    assert g["vibration_mms_4h_mean"][4] == pytest.approx(31 / 5)


def test_windows_do_not_cross_assets():
    rows = vib([(0, 1.0), (10, 3.0)], "A") + vib([(5, 100.0)], "B")
    g = build_features(silver(rows), P).sort("compressor_id", "timestamp")
    assert g["vibration_mms_1h_mean"].to_list() == pytest.approx([1.0, 2.0, 100.0])


def test_gap_longer_than_window_resets_it():
    g = build_features(silver(vib([(0, 5.0), (130, 7.0)])), P).sort("timestamp")
    assert g["vibration_mms_1h_mean"].to_list() == [5.0, 7.0]
    assert g["vibration_mms_4h_mean"].to_list() == [5.0, 6.0]


def test_rate_of_change_per_hour():
    # ref = latest reading at or before t-1h and no older than t-2h
    g = build_features(silver(vib([(0, 2.0), (30, 3.0), (60, 5.0), (90, 6.0), (240, 9.0)])), P)
    d = g.sort("timestamp")["vibration_mms_1h_delta"].to_list()
    assert d[0] is None and d[1] is None  # nothing an hour back
    assert d[2] == pytest.approx(3.0)  # (5 - 2) / 1h
    assert d[3] == pytest.approx(3.0)  # (6 - 3) / 1h
    assert d[4] is None  # latest at or before 3h is 90m (2.5h back): older than 2h


def test_rate_uses_actual_elapsed_hours():
    g = build_features(silver(vib([(0, 2.0), (100, 7.0)])), P).sort("timestamp")
    assert g["vibration_mms_1h_delta"][1] == pytest.approx(5.0 / (100 / 60))


def test_derived_and_statuses():
    rows = [
        ("A", 0, {"vibration_mms": 7.1, "discharge_pressure_psi": 1100.0, "suction_pressure_psi": 100.0}),
        ("A", 10, {"vibration_mms": 11.2, "horsepower": 1500.0 * 1.05}),
        ("A", 20, {"suction_pressure_psi": 20.0}),
        ("A", 30, {"vibration_mms": 7.09}),
    ]
    g = build_features(silver(rows), P).sort("timestamp")
    assert g["pressure_differential"][0] == 1000.0 and g["pressure_ratio"][0] == pytest.approx(11.0)
    assert g["vibration_mms_status"].to_list() == ["warning", "critical", "normal", "normal"]
    # horsepower is judged against rated (1500): 1575 = 105 % -> warning
    assert g["horsepower_status"].to_list() == ["normal", "warning", "normal", "normal"]
    # low-side threshold: suction <= 20 psi is critical
    assert g["suction_pressure_psi_status"].to_list() == ["normal", "normal", "critical", "normal"]
    assert g["health_status"].to_list() == ["warning", "critical", "critical", "normal"]


def test_time_features():
    g = build_features(silver(vib([(0, 1.0), (150, 1.0)])), P).sort("timestamp")
    # T0 is Saturday 22:00; +150 min is Sunday 00:30
    assert g["hour_of_day"].to_list() == [22, 0]
    assert g["day_of_week"].to_list() == [6, 7]
    assert g["is_weekend"].to_list() == [True, True]


def test_day_by_day_equals_one_pass():
    rows = [("A", m, {"vibration_mms": 1.0 + (m % 70) / 10, "gas_flow_mcfd": 8000.0 + m}) for m in range(0, 2880, 10)]
    rows += [("B", m, {"vibration_mms": 2.0 + (m % 50) / 10}) for m in range(5, 2880, 20)]
    frame = silver(rows)
    days = sorted(frame["date"].unique().to_list())
    whole = build_features(frame, P).sort("compressor_id", "timestamp")
    per_day = []
    for d in days:
        lookback = frame.filter(pl.col("date") <= d, pl.col("date") >= d - timedelta(days=1))
        per_day.append(build_features(lookback, P, [d]))
    assert pl.concat(per_day).sort("compressor_id", "timestamp").equals(whole)
    assert len(days) == 3

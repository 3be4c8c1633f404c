"""Each silver rule against hand-built bronze rows (Polars engine)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from altaviz.engines.polars_engine import validate
from altaviz.lake.schema import bronze_schema
from altaviz.profiles import load_profile

P = load_profile("compressor")
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
INGESTED = datetime(2026, 3, 10, tzinfo=UTC)
GOOD = {
    "vibration_mms": 3.0,
    "discharge_temp_f": 220.0,
    "suction_pressure_psi": 80.0,
    "discharge_pressure_psi": 1000.0,
    "horsepower": 1200.0,
    "gas_flow_mcfd": 9000.0,
}


def bronze(rows: list[dict]) -> pl.DataFrame:
    full = []
    for i, r in enumerate(rows):
        row = {"compressor_id": "COMP-0001", "timestamp": T0 + timedelta(minutes=10 * i), **GOOD}
        row.update(
            {
                "_raw_record": None,
                "_parse_error": None,
                "_parse_detail": None,
                "_source_file": "f.jsonl",
                "_source_row": i,
                "_ingested_at": INGESTED,
                "_batch_id": "b1",
            }
        )
        row.update(r)
        ts = row["timestamp"]
        row.setdefault("date", ts.date() if ts is not None else INGESTED.date())
        full.append(row)
    return pl.DataFrame(full, schema=bronze_schema(P))


META = pl.DataFrame(
    {
        "compressor_id": ["COMP-0001", "COMP-0002"],
        "model": ["Ariel JGK/4", "Ariel JGT/2"],
        "rated_horsepower": [1500.0, 1000.0],
        "install_date": [date(2019, 5, 1), date(2021, 1, 1)],
        "station_id": ["STN-01", "STN-01"],
        "latitude": [31.9, 31.8],
        "longitude": [-102.1, -102.2],
    }
)


def reasons(result) -> list[tuple[int, str, str]]:
    q = result.quarantine.sort("_source_row")
    return list(zip(q["_source_row"], q["_reason"], q["_reason_detail"], strict=True))


def test_clean_rows_pass_and_get_metadata():
    r = validate(bronze([{}, {}, {}]), META, P)
    assert r.silver.height == 3 and r.quarantine.height == 0
    assert r.silver["rated_horsepower"].to_list() == [1500.0] * 3
    assert r.silver["station_id"].unique().to_list() == ["STN-01"]
    assert r.silver["is_stuck"].to_list() == [False] * 3


@pytest.mark.parametrize(
    ("row", "reason", "detail"),
    [
        (
            {
                "_parse_error": "malformed_record",
                "_parse_detail": "Expecting value",
                "compressor_id": None,
                "timestamp": None,
            },
            "malformed_record",
            "Expecting value",
        ),
        ({"_parse_error": "invalid_type", "_parse_detail": "vibration_mms"}, "invalid_type", "vibration_mms"),
        ({"compressor_id": None}, "missing_asset_id", "compressor_id"),
        ({"compressor_id": "  "}, "missing_asset_id", "compressor_id"),
        ({"timestamp": None}, "unparseable_timestamp", "missing"),
        ({"compressor_id": "COMP-9999"}, "unknown_asset", "COMP-9999"),
        ({"timestamp": INGESTED + timedelta(minutes=6)}, "future_timestamp", "2026-03-10T00:06:00Z"),
        ({"horsepower": None}, "null_value", "horsepower"),
        ({"gas_flow_mcfd": float("nan")}, "non_finite", "gas_flow_mcfd"),
        ({"vibration_mms": float("inf")}, "non_finite", "vibration_mms"),
        ({"discharge_temp_f": 501.0}, "out_of_physical_range", "discharge_temp_f"),
        ({"suction_pressure_psi": -1.0}, "out_of_physical_range", "suction_pressure_psi"),
    ],
)
def test_each_rule_quarantines_with_reason(row, reason, detail):
    r = validate(bronze([{}, row, {}]), META, P)
    assert reasons(r) == [(1, reason, detail)]
    assert r.silver.height == 2
    assert r.silver.height + r.quarantine.height + r.total_duplicates == 3


def test_future_tolerance_is_inclusive_of_five_minutes():
    r = validate(bronze([{"timestamp": INGESTED + timedelta(minutes=5)}]), META, P)
    assert r.silver.height == 1


def test_first_failing_rule_wins():
    r = validate(bronze([{"horsepower": None, "discharge_temp_f": 9999.0}]), META, P)
    assert reasons(r) == [(0, "null_value", "horsepower")]


def test_quarantine_keeps_original_values():
    r = validate(bronze([{"discharge_temp_f": 777.5, "_source_file": "x/y.jsonl"}]), META, P)
    q = r.quarantine.row(0, named=True)
    assert q["discharge_temp_f"] == 777.5 and q["_source_file"] == "x/y.jsonl" and q["date"] == T0.date()


def test_duplicates_keep_first_ingested_and_are_counted():
    rows = [
        {},
        {"timestamp": T0, "vibration_mms": 9.0, "_source_file": "b.jsonl"},
        {"timestamp": T0, "vibration_mms": 8.0, "_source_file": "a.jsonl", "_source_row": 7},
    ]
    r = validate(bronze(rows), META, P)
    assert r.silver.height == 1 and r.quarantine.height == 0
    assert r.duplicates_dropped == {T0.date(): 2}
    # rows 0 (f.jsonl), 1 (b.jsonl), 2 (a.jsonl): same ingest time, so the smallest source file wins
    assert r.silver["vibration_mms"].to_list() == [8.0]


def test_duplicate_of_a_rejected_row_is_not_counted_twice():
    rows = [{"compressor_id": "COMP-9999"}, {"compressor_id": "COMP-9999", "timestamp": T0}]
    r = validate(bronze(rows), META, P)
    assert r.quarantine.height == 2 and r.total_duplicates == 0


def test_outlier_four_sigma_per_asset_and_day():
    rows = [{"vibration_mms": 3.0 + 0.01 * (i % 5)} for i in range(40)]
    rows[20] = {"vibration_mms": 20.0}
    r = validate(bronze(rows), META, P)
    assert reasons(r) == [(20, "outlier", "vibration_mms")]
    # the same spike on another asset's day does not affect COMP-0001's statistics
    assert r.silver.height == 39


def test_no_outlier_when_spread_is_wide():
    rows = [{"vibration_mms": float(v)} for v in (1, 9, 2, 8, 3, 7, 4, 6, 5, 5)]
    r = validate(bronze(rows), META, P)
    assert r.quarantine.height == 0


def test_stuck_sensor_flagged_after_min_readings_in_window():
    # 10-minute readings; gas flow flat from row 2 on: window (t-1h, t] holds rows t-50m..t
    rows = [{"gas_flow_mcfd": 9000.0 + i} for i in range(2)] + [{"gas_flow_mcfd": 5000.0}] * 8
    rows = [
        {
            **r,
            "vibration_mms": 3.0 + 0.1 * i,
            "discharge_temp_f": 220 + i,
            "suction_pressure_psi": 80 + i,
            "discharge_pressure_psi": 1000 + i,
            "horsepower": 1200 + i,
        }
        for i, r in enumerate(rows)
    ]
    r = validate(bronze(rows), META, P)
    flags = r.silver.sort("timestamp")["is_stuck"].to_list()
    # the window must be flat throughout: row 7 (t=70m) is the first whose window (10m, 70m] holds only flat rows
    assert flags == [False] * 7 + [True] * 3


def test_stuck_needs_min_readings():
    rows = [{"timestamp": T0 + timedelta(minutes=30 * i)} for i in range(4)]
    r = validate(bronze(rows), META, P)
    # every sensor is flat, but a 1h window never holds 4 readings at a 30-minute interval
    assert r.silver["is_stuck"].to_list() == [False] * 4


def test_conservation_on_mixed_batch():
    rows = [{}, {"horsepower": None}, {"timestamp": T0}, {"compressor_id": "COMP-4242"}, {}]
    r = validate(bronze(rows), META, P)
    assert r.silver.height + r.quarantine.height + r.total_duplicates == 5
    assert r.total_duplicates == 1

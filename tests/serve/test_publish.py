"""Pure transforms of altaviz.serve.publish against hand-computed values on tiny frames."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from altaviz.profiles import load_profile
from altaviz.serve.publish import (
    AGG_SCHEMA,
    ALERT_SCHEMA,
    PublishError,
    hourly_aggregates,
    quality_rows,
    threshold_alerts,
)

T0 = datetime(2026, 1, 1, 10, tzinfo=UTC)
NORMAL = {
    "vibration_mms": 3.0,
    "discharge_temp_f": 200.0,
    "suction_pressure_psi": 80.0,
    "discharge_pressure_psi": 1000.0,
    "horsepower": 900.0,
    "gas_flow_mcfd": 8000.0,
}


@pytest.fixture(scope="module")
def profile():
    return load_profile("compressor")


def silver(rows: list[dict]) -> pl.DataFrame:
    """Silver-shaped frame: every sensor normal unless the row overrides it; rated 1,000 hp unless given."""
    full = [
        {"compressor_id": "COMP-0001", "rated_horsepower": 1000.0, **NORMAL, **r, "timestamp": T0 + r["t"]}
        for r in rows
    ]
    for r in full:
        del r["t"]
    frame = pl.DataFrame(full)
    return frame.with_columns(
        pl.col("timestamp").cast(pl.Datetime("us", "UTC")),
        *(pl.col(s).cast(pl.Float64) for s in NORMAL),
        pl.col("rated_horsepower").cast(pl.Float64),
        date=pl.col("timestamp").dt.date(),
        is_stuck=pl.lit(False),
    )


def test_hourly_aggregates_by_hour_edges_and_nulls(profile):
    frame = silver(
        [
            {"t": timedelta(0), "vibration_mms": 2.0},
            {"t": timedelta(minutes=59, seconds=59, microseconds=999_999), "vibration_mms": 4.0},
            {"t": timedelta(hours=1), "vibration_mms": 10.0, "gas_flow_mcfd": None},
            {"t": timedelta(hours=1, minutes=30), "vibration_mms": 6.0, "gas_flow_mcfd": None},
            {"t": timedelta(minutes=10), "compressor_id": "COMP-0002", "vibration_mms": 1.5},
        ]
    )
    out = hourly_aggregates(frame, profile)
    assert out.schema == AGG_SCHEMA
    assert out.height == 2 * 6 + 6 - 1  # gas flow has no reading at all in COMP-0001's 11:00 hour
    vib = out.filter(pl.col("sensor") == "vibration_mms")
    assert vib.rows() == [
        ("COMP-0001", "vibration_mms", T0, 3.0, 2.0, 4.0, 2),
        ("COMP-0001", "vibration_mms", T0 + timedelta(hours=1), 8.0, 6.0, 10.0, 2),
        ("COMP-0002", "vibration_mms", T0, 1.5, 1.5, 1.5, 1),
    ]
    gas = out.filter(pl.col("sensor") == "gas_flow_mcfd", pl.col("compressor_id") == "COMP-0001")
    assert gas.rows() == [("COMP-0001", "gas_flow_mcfd", T0, 8000.0, 8000.0, 8000.0, 2)]
    assert out.select("compressor_id", "sensor", "hour_start").is_duplicated().sum() == 0
    assert out.equals(out.sort("compressor_id", "sensor", "hour_start"))


def test_hourly_aggregates_converts_other_time_zones_to_utc(profile):
    frame = silver([{"t": timedelta(minutes=5)}]).with_columns(
        pl.col("timestamp").dt.convert_time_zone("America/Chicago")
    )
    out = hourly_aggregates(frame, profile)
    assert out.get_column("hour_start").unique().to_list() == [T0]


def test_hourly_aggregates_names_missing_sensor(profile):
    with pytest.raises(PublishError, match="horsepower"):
        hourly_aggregates(silver([{"t": timedelta(0)}]).drop("horsepower"), profile)


def test_threshold_alerts_severity_sides_and_relative_thresholds(profile):
    frame = silver(
        [
            # vibration (warning 7.1, critical 11.2, high side, inclusive)
            {"t": timedelta(minutes=0), "vibration_mms": 7.1},  # warning, exactly on the limit
            {"t": timedelta(minutes=10), "vibration_mms": 9.0},  # warning
            {"t": timedelta(minutes=20), "vibration_mms": 11.2},  # critical only, exactly on the limit
            {"t": timedelta(minutes=30), "vibration_mms": 7.0},  # normal
            {"t": timedelta(minutes=40), "vibration_mms": 15.0},  # critical only
            {"t": timedelta(hours=1), "vibration_mms": 8.0},  # next hour: warning
            # suction pressure (warning low 35, critical low 20)
            {"t": timedelta(hours=2), "suction_pressure_psi": 35.0},  # warning, on the limit
            {"t": timedelta(hours=2, minutes=5), "suction_pressure_psi": 30.0},  # warning, the worst one
            {"t": timedelta(hours=2, minutes=10), "suction_pressure_psi": 35.1},  # normal
            {"t": timedelta(hours=2, minutes=15), "suction_pressure_psi": 20.0},  # critical
            # horsepower relative to rated_horsepower (warning 1.05x, critical 1.15x)
            {"t": timedelta(hours=3), "horsepower": 1100.0},  # 1.10 x 1000: warning
            # 1,100 hp is normal for a 2,000 hp unit; 2,400 = 1.20 x 2,000: critical
            {
                "t": timedelta(hours=3),
                "compressor_id": "COMP-0002",
                "rated_horsepower": 2000.0,
                "horsepower": 1100.0,
            },
            {
                "t": timedelta(hours=3, minutes=1),
                "compressor_id": "COMP-0002",
                "rated_horsepower": 2000.0,
                "horsepower": 2400.0,
            },
        ]
    )
    out = threshold_alerts(frame, profile)
    assert out.schema == ALERT_SCHEMA
    h = timedelta(hours=1)
    m = timedelta(minutes=1)
    assert out.rows() == [
        ("COMP-0001", T0 + 3 * h, "horsepower", "warning", 1100.0, 1050.0, 1, T0 + 3 * h),
        ("COMP-0001", T0 + 2 * h, "suction_pressure_psi", "critical", 20.0, 20.0, 1, T0 + 2 * h + 15 * m),
        ("COMP-0001", T0 + 2 * h, "suction_pressure_psi", "warning", 30.0, 35.0, 2, T0 + 2 * h),
        ("COMP-0001", T0, "vibration_mms", "critical", 15.0, 11.2, 2, T0 + 20 * m),
        ("COMP-0001", T0, "vibration_mms", "warning", 9.0, 7.1, 2, T0),
        ("COMP-0001", T0 + h, "vibration_mms", "warning", 8.0, 7.1, 1, T0 + h),
        ("COMP-0002", T0 + 3 * h, "horsepower", "critical", 2400.0, 2300.0, 1, T0 + 3 * h + m),
    ]


def test_threshold_alerts_none_for_a_normal_fleet_and_skips_unknown_rating(profile):
    frame = silver(
        [
            {"t": timedelta(0)},
            {"t": timedelta(minutes=1), "horsepower": 5000.0, "rated_horsepower": None},
        ]
    )
    out = threshold_alerts(frame, profile)
    assert out.is_empty()
    assert out.schema == ALERT_SCHEMA


def test_threshold_alerts_requires_the_relative_metadata_column(profile):
    with pytest.raises(PublishError, match="rated_horsepower"):
        threshold_alerts(silver([{"t": timedelta(0)}]).drop("rated_horsepower"), profile)


def test_quality_rows_flattens_nested_metrics():
    report = {
        "date": "2026-01-01",
        "rows_in": 10,
        "rows_out": 8,
        "duplicates_dropped": 1,
        "quarantined": {"null_value": 1, "outlier": {"vibration_mms": 2}},
        "missing_rate": {"vibration_mms": 0.01},
        "freshness_lag_s": 30.0,
        "schema_consistent": True,
        "engine": "polars",
        "flagged_sensors": ["vibration_mms"],
        "skipped": None,
        "broken": float("nan"),
    }
    out = quality_rows(report)
    assert out.columns == ["date", "layer", "metric", "value", "details"]
    rows = {r["metric"]: r for r in out.iter_rows(named=True)}
    assert set(rows) == {
        "rows_in",
        "rows_out",
        "duplicates_dropped",
        "quarantined.null_value",
        "quarantined.outlier.vibration_mms",
        "missing_rate.vibration_mms",
        "freshness_lag_s",
        "schema_consistent",
        "engine",
        "flagged_sensors",
        "skipped",
        "broken",
    }
    assert {r["layer"] for r in rows.values()} == {"silver"}
    assert {str(r["date"]) for r in rows.values()} == {"2026-01-01"}
    assert rows["rows_in"]["value"] == 10.0 and rows["rows_in"]["details"] is None
    assert rows["quarantined.outlier.vibration_mms"]["value"] == 2.0
    assert rows["missing_rate.vibration_mms"]["value"] == 0.01
    assert rows["schema_consistent"]["value"] == 1.0
    assert json.loads(rows["schema_consistent"]["details"]) is True
    assert rows["engine"]["value"] is None and json.loads(rows["engine"]["details"]) == "polars"
    assert json.loads(rows["flagged_sensors"]["details"]) == ["vibration_mms"]
    assert rows["skipped"]["value"] is None and rows["skipped"]["details"] is None
    assert rows["broken"]["value"] is None and json.loads(rows["broken"]["details"]) == "nan"


def test_quality_rows_layer_and_date_checks():
    assert quality_rows({"date": "2026-01-02", "layer": "gold", "x": 1})["layer"].to_list() == ["gold"]
    assert quality_rows({"date": "2026-01-02", "x": 1}, layer="bronze")["layer"].to_list() == ["bronze"]
    with pytest.raises(PublishError, match="date"):
        quality_rows({"rows_in": 1})

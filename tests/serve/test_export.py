"""Bulk export into a real PostgreSQL: idempotent day re-export, partition swap, compressor upsert."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import polars as pl
import psycopg
import pytest

from altaviz.serve.db.export import ExportError, connect, export_compressors, export_day, partition_name
from altaviz.serve.publish import AGG_SCHEMA, ALERT_SCHEMA, quality_rows

DAY = date(2026, 3, 2)
T0 = datetime(2026, 3, 2, tzinfo=UTC)


def aggregates(day_start: datetime, assets: int = 3, hours: int = 24, bump: float = 0.0) -> pl.DataFrame:
    rows = [
        (f"COMP-{a:04d}", sensor, day_start + timedelta(hours=h), 10.0 * a + h + bump, h - 1.0, h + 1.0, 6)
        for a in range(1, assets + 1)
        for sensor in ("horsepower", "vibration_mms")
        for h in range(hours)
    ]
    return pl.DataFrame(rows, schema=AGG_SCHEMA, orient="row")


def alerts(day_start: datetime) -> pl.DataFrame:
    h3 = day_start + timedelta(hours=3)
    rows = [
        ("COMP-0001", h3, "vibration_mms", "warning", 8.0, 7.1, 2, h3 + timedelta(minutes=10)),
        ("COMP-0001", h3, "vibration_mms", "critical", 12.0, 11.2, 1, h3 + timedelta(minutes=40)),
    ]
    return pl.DataFrame(rows, schema=ALERT_SCHEMA, orient="row")


def quality(day: date, rows_in: int = 10) -> pl.DataFrame:
    return quality_rows({"date": day.isoformat(), "rows_in": rows_in, "quarantined": {"null_value": 1}, "ok": True})


def snapshot(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        return {
            "agg": conn.execute("SELECT * FROM sensor_readings_agg ORDER BY 1, 2, 3").fetchall(),
            "alerts": conn.execute("SELECT * FROM alert_history ORDER BY 1, 2, 3, 4").fetchall(),
            "quality": conn.execute(
                "SELECT date, layer, metric, value, details FROM data_quality_metrics ORDER BY 1, 2, 3"
            ).fetchall(),
            "partitions": conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'sensor_readings_agg'::regclass ORDER BY 1"
            ).fetchall(),
        }


def test_export_day_twice_gives_the_same_rows(clean_postgres_url):
    url = clean_postgres_url
    first = export_day(url, DAY, aggregates(T0), alerts(T0), quality(DAY))
    assert first.written == {"sensor_readings_agg": 144, "alert_history": 2, "data_quality_metrics": 3}
    assert first.deleted == {"sensor_readings_agg": 0, "alert_history": 0, "data_quality_metrics": 0}
    once = snapshot(url)
    second = export_day(url, DAY, aggregates(T0), alerts(T0), quality(DAY))
    assert second.deleted == first.written
    assert snapshot(url) == once
    assert len(once["agg"]) == 144 and len(once["alerts"]) == 2 and len(once["quality"]) == 3
    assert once["partitions"] == [(partition_name(DAY),)]
    assert once["agg"][0] == ("COMP-0001", "horsepower", T0, 10.0, -1.0, 1.0, 6)
    details = {r[2]: r[4] for r in once["quality"]}
    assert details["ok"] is True  # jsonb comes back as JSON


def test_reexport_replaces_only_that_day(clean_postgres_url):
    url = clean_postgres_url
    next_day, t1 = DAY + timedelta(days=1), T0 + timedelta(days=1)
    export_day(url, DAY, aggregates(T0), alerts(T0), quality(DAY))
    export_day(url, next_day, aggregates(t1), alerts(t1), quality(next_day))
    # the first day again, with fewer assets, different values, no alerts
    export_day(url, DAY, aggregates(T0, assets=2, bump=0.5), alerts(T0).head(0), quality(DAY, rows_in=99))
    snap = snapshot(url)
    day_rows = [r for r in snap["agg"] if r[2] < t1]
    assert len(day_rows) == 2 * 2 * 24 and {r[0] for r in day_rows} == {"COMP-0001", "COMP-0002"}
    assert day_rows[0][3] == 10.5
    assert len([r for r in snap["agg"] if r[2] >= t1]) == 144
    assert [r[1] for r in snap["alerts"]] == [t1 + timedelta(hours=3)] * 2
    assert {(r[0], r[2], r[3]) for r in snap["quality"] if r[2] == "rows_in"} == {
        (DAY, "rows_in", 99.0),
        (next_day, "rows_in", 10.0),
    }
    assert snap["partitions"] == [(partition_name(DAY),), (partition_name(next_day),)]


def test_empty_day_drops_its_partition(clean_postgres_url):
    url = clean_postgres_url
    export_day(url, DAY, aggregates(T0), alerts(T0), quality(DAY))
    result = export_day(url, DAY, aggregates(T0).head(0), alerts(T0).head(0), quality(DAY))
    assert result.deleted["sensor_readings_agg"] == 144 and result.written["sensor_readings_agg"] == 0
    snap = snapshot(url)
    assert snap["agg"] == [] and snap["alerts"] == [] and snap["partitions"] == []
    again = export_day(url, DAY, aggregates(T0).head(0), alerts(T0).head(0), quality(DAY))
    assert again.deleted["sensor_readings_agg"] == 0 and snapshot(url)["partitions"] == []


def test_none_leaves_a_table_alone(clean_postgres_url):
    url = clean_postgres_url
    export_day(url, DAY, aggregates(T0), alerts(T0), quality(DAY))
    result = export_day(url, DAY, None, None, quality(DAY, rows_in=5))
    assert set(result.written) == {"data_quality_metrics"}
    snap = snapshot(url)
    assert len(snap["agg"]) == 144 and len(snap["alerts"]) == 2


def test_rows_outside_the_day_are_rejected_before_writing(clean_postgres_url):
    url = clean_postgres_url
    with pytest.raises(ExportError, match=r"hour_start within 2026-03-02"):
        export_day(url, DAY, aggregates(T0, hours=25), None, None)
    with pytest.raises(ExportError, match="severity"):
        export_day(url, DAY, None, alerts(T0).with_columns(severity=pl.lit("bad")), None)
    with pytest.raises(ExportError, match="missing"):
        export_day(url, DAY, aggregates(T0).drop("count"), None, None)
    with pytest.raises(ExportError, match="duplicate"):
        export_day(url, DAY, pl.concat([aggregates(T0), aggregates(T0).head(1)]), None, None)
    with pytest.raises(ExportError, match="date 2026-03-02"):
        export_day(url, DAY, None, None, quality(DAY + timedelta(days=1)))
    assert snapshot(url) == {"agg": [], "alerts": [], "quality": [], "partitions": []}


def test_a_failure_mid_export_rolls_everything_back(clean_postgres_url):
    url = clean_postgres_url
    export_day(url, DAY, aggregates(T0), alerts(T0), quality(DAY))
    before = snapshot(url)
    bad_alerts = alerts(T0).with_columns(readings=pl.lit(0, pl.Int32))  # violates CHECK (readings > 0)
    with pytest.raises(ExportError, match="readings"):
        export_day(url, DAY, aggregates(T0, bump=1.0), bad_alerts, quality(DAY, rows_in=1))
    assert snapshot(url) == before


def test_dates_on_one_shared_connection_commit_one_by_one(clean_postgres_url):
    """`conn=`: each date is its own transaction on the shared connection; a failed date rolls back alone and
    the connection goes on to the next date."""
    url = clean_postgres_url
    next_day = DAY + timedelta(days=1)
    t1 = T0 + timedelta(days=1)
    bad_alerts = alerts(t1).with_columns(readings=pl.lit(0, pl.Int32))  # violates CHECK (readings > 0)
    with connect(url) as conn:
        export_day(url, DAY, aggregates(T0), alerts(T0), quality(DAY), conn=conn)
        committed = snapshot(url)  # read on another connection: the first date is committed already
        with pytest.raises(ExportError, match="readings"):
            export_day(url, next_day, aggregates(t1), bad_alerts, quality(next_day), conn=conn)
        assert snapshot(url) == committed
        export_day(url, next_day, aggregates(t1), alerts(t1), quality(next_day), conn=conn)
    shared = snapshot(url)
    assert shared["partitions"] == [(partition_name(DAY),), (partition_name(next_day),)]
    assert len(shared["agg"]) == 2 * aggregates(T0).height and len(shared["alerts"]) == 4
    export_day(url, DAY, aggregates(T0), alerts(T0), quality(DAY))  # the same rows, on a connection of its own
    export_day(url, next_day, aggregates(t1), alerts(t1), quality(next_day))
    assert snapshot(url) == shared


def metadata(**changes: object) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "compressor_id": ["COMP-0001", "COMP-0002"],
            "model": ["Ariel JGK/4", "Ariel JGT/2"],
            "rated_horsepower": [1380.0, 800.0],
            "install_date": [date(2019, 5, 1), date(2021, 8, 15)],
            "station_id": ["STN-A", "STN-B"],
            "latitude": [31.9, 32.1],
            "longitude": [-102.1, -101.8],
            "extra_column": [1, 2],
        }
    )
    return frame.with_columns(**{k: pl.Series(v) for k, v in changes.items()})


def test_export_compressors_upserts(clean_postgres_url):
    url = clean_postgres_url
    assert export_compressors(url, metadata()) == 2
    with psycopg.connect(url) as conn:
        first = conn.execute("SELECT *, updated_at FROM compressors ORDER BY 1").fetchall()
    assert first[0][:7] == ("COMP-0001", "Ariel JGK/4", 1380.0, date(2019, 5, 1), "STN-A", 31.9, -102.1)
    assert export_compressors(url, metadata()) == 0  # nothing changed: nothing touched
    changed = metadata(rated_horsepower=[1380.0, 900.0])
    more = pl.concat([changed, metadata(compressor_id=["COMP-0003", "COMP-0004"]).head(1)])
    assert export_compressors(url, more) == 2  # one update, one insert
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT compressor_id, rated_horsepower, updated_at FROM compressors ORDER BY 1").fetchall()
    assert [(r[0], r[1]) for r in rows] == [
        ("COMP-0001", 1380.0),
        ("COMP-0002", 900.0),
        ("COMP-0003", 1380.0),
    ]
    assert rows[0][2] == first[0][7]  # unchanged row keeps its updated_at
    assert rows[1][2] > first[1][7]
    with pytest.raises(ExportError, match="duplicate"):
        export_compressors(url, pl.concat([metadata(), metadata()]))
    with pytest.raises(ExportError, match="station_id"):
        export_compressors(url, metadata().drop("station_id"))


def test_quality_details_are_jsonb(clean_postgres_url):
    url = clean_postgres_url
    export_day(url, DAY, None, None, quality_rows({"date": DAY, "sensors": ["a", "b"], "note": "x"}))
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT metric, jsonb_typeof(details), details FROM data_quality_metrics ORDER BY 1"
        ).fetchall()
    assert rows == [("note", "string", "x"), ("sensors", "array", ["a", "b"])]
    assert json.dumps(rows[1][2]) == '["a", "b"]'

"""Gold window shapes the compressor profile does not use, on both engines: windows that are not multiples of an
hour, a window longer than a day (sums across whole days in between), min as well as max, a 2 h rate, and an
asset with a day missing. The Spark engine builds these windows without range frames (row index, window starts,
prefix sums per day, time buckets); this holds it to the Polars engine beyond the profile's own 1h/4h/24h."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from altaviz.engines import polars_engine
from altaviz.engines.spark_engine import build_features
from altaviz.engines.spark_engine.schema import to_polars, to_spark
from altaviz.lake.schema import gold_schema, silver_schema

from .compare import assert_frames_conform


def _profile(profile):
    features = profile.features.model_copy(
        update={"windows": ["30m", "90m", "36h"], "stats": ["mean", "std", "max", "min"], "rate_of_change": "2h"}
    )
    return profile.model_copy(update={"features": features})


def _silver(data) -> pl.DataFrame:
    """The simulated silver, then the same two days again two days later (four dates), less one asset's third
    day, less every fifth reading of another asset (irregular spacing)."""
    p = data.profile
    silver = polars_engine.validate(data.bronze, data.metadata, p).silver
    ts = pl.col(p.time_column)
    later = silver.with_columns(ts + timedelta(days=2), pl.col("date") + timedelta(days=2))
    frame = pl.concat([silver, later]).sort(p.id_column, p.time_column)
    ids = sorted(frame.get_column(p.id_column).unique().to_list())
    third = frame.get_column("date").unique().sort()[2]
    frame = frame.filter(~((pl.col(p.id_column) == ids[0]) & (pl.col("date") == third)))
    frame = frame.with_row_index("_i").filter(~((pl.col(p.id_column) == ids[1]) & (pl.col("_i") % 5 == 0)))
    return frame.drop("_i")


def test_gold_other_windows_identical(spark, conformance_data):
    data = conformance_data["simulated"]
    profile = _profile(data.profile)
    silver = _silver(data)
    dates = sorted(silver.get_column("date").unique().to_list())[1:]  # the first date is lookback only
    ours = polars_engine.build_features(silver, profile, dates)
    theirs = to_polars(
        build_features(to_spark(spark, silver, silver_schema(profile)), profile, dates), gold_schema(profile)
    )
    assert ours.height > 0
    assert_frames_conform(ours, theirs, [profile.id_column, profile.time_column], "gold, other windows")


def test_gold_range_window_fallback_identical(spark, conformance_data, monkeypatch):
    """Readings too sparse for time buckets: max/min from range windows, same values."""
    from altaviz.engines.spark_engine import windows

    monkeypatch.setattr(windows, "bucket_length", lambda seconds, spacing: 0)
    test_gold_other_windows_identical(spark, conformance_data)


def test_bucket_length_divides_windows_and_fits_the_data():
    from altaviz.engines.spark_engine.windows import bucket_length

    assert bucket_length([3600, 14400, 86400], 600) == 3600  # 10-min readings: 1 h buckets of ~6 readings
    assert bucket_length([86400], 600) == 4800  # a divisor of 24 h near 8 readings, not 24 h (144 per bucket)
    assert bucket_length([86400], 1) == 8  # 1-s readings
    assert bucket_length([3600, 3601], 600) == 0  # gcd 1 s: far finer than the readings -> range windows
    assert all(w % bucket_length([1800, 5400, 129600], 600) == 0 for w in (1800, 5400, 129600))

"""The first reading of every asset carries a value fault (a null required sensor): both engines quarantine it.
The Spark engine finds duplicates from the previous row of each asset; the first row has none, which must not
exempt it from the value rules that follow."""

from __future__ import annotations

import polars as pl

from altaviz.engines import polars_engine
from altaviz.engines.spark_engine import validate
from altaviz.engines.spark_engine.schema import to_polars, to_spark
from altaviz.lake.schema import bronze_schema, metadata_schema, quarantine_schema, silver_schema

from .compare import assert_frames_conform


def test_first_reading_of_each_asset_is_checked(spark, conformance_data):
    data = conformance_data["simulated"]
    p = data.profile
    aid, ts = p.id_column, p.time_column
    sensor = p.required_sensors[0]
    bronze = data.bronze.with_row_index("_i")
    first = bronze.filter(pl.col(ts).is_not_null()).sort(ts).group_by(aid).first().get_column("_i")
    bronze = bronze.with_columns(
        pl.when(pl.col("_i").is_in(first.implode())).then(None).otherwise(pl.col(sensor)).alias(sensor)
    ).drop("_i")
    ours = polars_engine.validate(bronze, data.metadata, p)
    r = validate(to_spark(spark, bronze, bronze_schema(p)), to_spark(spark, data.metadata, metadata_schema(p)), p)
    keys = [aid, ts]
    assert ours.quarantine.filter(pl.col("_reason") == "null_value").height >= first.len()
    assert_frames_conform(ours.silver, to_polars(r.silver, silver_schema(p)), keys, "silver")
    q_keys = ["_source_file", "_source_row"]
    assert_frames_conform(ours.quarantine, to_polars(r.quarantine, quarantine_schema(p)), q_keys, "quarantine")

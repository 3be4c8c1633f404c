"""The stream sink against a real PostgreSQL: fencing of a partition another processor committed on, and the
key conflict that sends the processor to ask the database which readings are stored."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from altaviz.lake.schema import TIME
from altaviz.profiles import load_profile
from altaviz.stream.sink import Fenced, KeyConflict, PgSink

PROFILE = load_profile("compressor")
T0 = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp() * 1_000_000)


def _rows(offsets: list[int], seconds: list[int]) -> pl.DataFrame:
    n = len(offsets)
    return pl.DataFrame(
        {
            "compressor_id": ["COMP-0001"] * n,
            "timestamp": pl.Series([T0 + s * 1_000_000 for s in seconds], dtype=pl.Int64).cast(TIME),
            **{s: [1.0] * n for s in PROFILE.sensor_names},
            "alert_mask": pl.Series([0] * n, dtype=pl.Int32),
            "_partition": pl.Series([0] * n, dtype=pl.Int32),
            "_offset": pl.Series(offsets, dtype=pl.Int64),
            "_published_at": pl.Series([T0] * n, dtype=pl.Int64).cast(TIME),
        }
    )


def _write(sink: PgSink, rows: pl.DataFrame, next_offset: int, expected: int | None) -> int:
    return sink.write(rows, None, {0: (next_offset, T0)}, {0: expected}, None, lambda: None)


def test_a_processor_that_lost_its_partition_is_fenced(fleet_url):
    first = PgSink(fleet_url, PROFILE, "g", "t")
    second = PgSink(fleet_url, PROFILE, "g", "t")
    try:
        assert _write(first, _rows([0, 1], [0, 1]), 2, None) == 2
        with pytest.raises(Fenced) as fenced:  # `second` still believes nothing was committed
            _write(second, _rows([0, 1], [0, 1]), 2, None)
        assert fenced.value.partitions == [0]
        assert second.progress([0]) == {0: (2, T0)}  # the fenced transaction changed nothing
        assert _write(second, _rows([2], [2]), 3, 2) == 1  # with the stored progress it goes on
        with pytest.raises(Fenced):
            _write(first, _rows([2], [2]), 3, 2)
        assert sorted(second.open_rows(0, T0)["_offset"].to_list()) == [0, 1, 2]
    finally:
        first.close()
        second.close()


def test_a_stored_key_raises_a_conflict_and_the_database_says_which_message_stored_it(fleet_url):
    sink = PgSink(fleet_url, PROFILE, "g", "t")
    try:
        _write(sink, _rows([0, 1], [0, 1]), 2, None)
        batch = _rows([1, 2, 3], [1, 0, 3])  # offset 1 again (a redelivery); offset 2 repeats the key of offset 0
        with pytest.raises(KeyConflict):
            _write(sink, batch, 4, 2)
        assert sink.progress([0]) == {0: (2, T0)}  # rolled back
        stored = sink.stored_messages(batch).sort("_offset")
        assert stored.rows() == [(0, 1, True), (0, 2, False)]
        assert _write(sink, batch.filter(pl.col("_offset") == 3), 4, 2) == 1
    finally:
        sink.close()

"""The NumPy binary COPY encoder, round-tripped through a real PostgreSQL server."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import psycopg
import pytest

from altaviz.serve.db.pgcopy import HEADER, TRAILER, CopyEncodeError, copy_chunks

TYPES = {
    "t": "text",
    "f": "float8",
    "i": "int4",
    "b": "int8",
    "flag": "bool",
    "d": "date",
    "ts": "timestamptz",
}


def roundtrip(url: str, frame: pl.DataFrame, chunk_rows: int = 3) -> list[tuple]:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE rt (t text, f double precision, i integer, b bigint, flag boolean, d date,"
            " ts timestamptz)"
        )
        with cur.copy(f"COPY rt ({', '.join(TYPES)}) FROM STDIN (FORMAT BINARY)") as copy:
            for chunk in copy_chunks(frame, list(TYPES.values()), "rt", chunk_rows=chunk_rows):
                copy.write(chunk)
        cur.execute("SET TIME ZONE 'UTC'")
        rows = cur.execute("SELECT * FROM rt").fetchall()
        conn.rollback()
    return rows


def test_roundtrip_all_types_nulls_unicode_and_chunks(postgres_url):
    ts = [
        datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),  # before the PostgreSQL epoch
        None,
        datetime(2026, 6, 30, 12, 0, 0, 123_456, tzinfo=UTC),
        datetime(2000, 1, 1, tzinfo=UTC),
    ]
    frame = pl.DataFrame(
        {
            "t": ["COMP-0001", "", None, "vibração ✓", "a longer value than the others"],
            "f": [1.5, -0.0, None, 1e300, float("-inf")],
            "i": [1, -2, None, 2_147_483_647, 0],
            "b": [2**40, -1, None, 0, 7],
            "flag": [True, False, None, True, False],
            "d": [date(2026, 1, 1), date(1970, 1, 1), None, date(2000, 1, 1), date(1999, 12, 31)],
            "ts": ts,
        },
        schema={
            "t": pl.String,
            "f": pl.Float64,
            "i": pl.Int32,
            "b": pl.Int64,
            "flag": pl.Boolean,
            "d": pl.Date,
            "ts": pl.Datetime("us", "UTC"),
        },
    )
    assert roundtrip(postgres_url, frame) == [tuple(r) for r in frame.rows()]


def test_roundtrip_text_all_same_length_and_naive_times(postgres_url):
    frame = pl.DataFrame(
        {
            "t": ["AA", "BB", "AA", "CC"],
            "f": [1.0, 2.0, 3.0, 4.0],
            "i": [1, 2, 3, 4],
            "b": [1, 2, 3, 4],
            "flag": [True] * 4,
            "d": ["2026-01-01"] * 4,  # ISO strings are accepted for date columns
            "ts": [datetime(2026, 1, 1, h) for h in range(4)],  # naive: taken as UTC
        }
    )
    rows = roundtrip(postgres_url, frame, chunk_rows=100)
    assert [r[0] for r in rows] == ["AA", "BB", "AA", "CC"]
    assert rows[3][6] == datetime(2026, 1, 1, 3, tzinfo=UTC)
    assert {r[5] for r in rows} == {date(2026, 1, 1)}


def test_empty_frame_is_header_and_trailer():
    frame = pl.DataFrame(schema={"t": pl.String, "f": pl.Float64})
    assert b"".join(copy_chunks(frame, ["text", "float8"], "x")) == HEADER + TRAILER


def test_bad_types_are_named():
    frame = pl.DataFrame({"a": ["x"], "b": ["not a number"]})
    with pytest.raises(CopyEncodeError, match="column b"):
        list(copy_chunks(frame, ["text", "int4"], "things"))
    with pytest.raises(CopyEncodeError, match="things"):
        list(copy_chunks(frame, ["text", "uuid"], "things"))

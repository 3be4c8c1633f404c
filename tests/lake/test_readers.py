"""Raw readers: exact bronze rows and parse errors on the bad-input corpus and on generated files."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import random
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from altaviz.lake.errors import LakeError
from altaviz.lake.readers import (
    discover_files,
    path_date,
    raw_file,
    read_chunk,
    read_raw_file,
    resolve_raw_root,
)
from altaviz.lake.readers.coerce import parse_times_text
from altaviz.lake.schema import bronze_schema
from altaviz.profiles import load_profile

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"
ROOT = CORPUS / "raw"
PROFILE = load_profile("compressor")
SENSORS = PROFILE.sensor_names


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def read(rel: str) -> tuple[pl.DataFrame, object]:
    return read_raw_file(ROOT / rel, ROOT, PROFILE)


def test_read_frame_has_the_bronze_columns_minus_batch_columns() -> None:
    frame, _ = read("2026/11/16/ST-02/COMP-9999.jsonl")
    expected = {k: v for k, v in bronze_schema(PROFILE).items() if k not in ("_ingested_at", "_batch_id")}
    assert frame.schema == pl.Schema(expected)


def test_discovery_skips_reference_events_hidden_and_unknown_files() -> None:
    assert resolve_raw_root(CORPUS) == ROOT
    assert resolve_raw_root(ROOT) == ROOT
    found = [f.source_file for f in discover_files(ROOT)]
    assert found == [
        "2026/11/16/ST-01/COMP-0001.jsonl",
        "2026/11/16/ST-01/COMP-0002.jsonl",
        "2026/11/16/ST-02/COMP-0003.jsonl",
        "2026/11/16/ST-02/COMP-9999.jsonl",
        "2026/11/17/ST-01/COMP-0001.jsonl",
        "date=2026-11-16/part-0.csv",
        "date=2026-11-16/part-1.parquet",
        "date=2026-11-17/part-0.parquet",
        "date=2026-11-17/part-1.csv.gz",
    ]


def test_source_file_is_relative_to_the_raw_root_whether_given_dir_or_dir_raw() -> None:
    rel = "date=2026-11-17/part-1.csv.gz"
    _, via_raw = read_raw_file(ROOT / rel, ROOT, PROFILE)
    _, via_dir = read_raw_file(ROOT / rel, CORPUS, PROFILE)
    assert via_raw.source_file == via_dir.source_file == rel
    assert via_raw.checksum == via_dir.checksum == hashlib.sha256((ROOT / rel).read_bytes()).hexdigest()


def test_missing_raw_dir_and_unsupported_file_are_errors(tmp_path: Path) -> None:
    with pytest.raises(LakeError, match="not found"):
        resolve_raw_root(tmp_path / "nope")
    with pytest.raises(LakeError, match="unsupported format"):
        raw_file(ROOT / "notes.txt", ROOT)


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("date=2026-11-16/part-0.csv", date(2026, 11, 16)),
        ("x/2026/02/03/ST-1/a.jsonl", date(2026, 2, 3)),
        ("a.jsonl", None),
        ("date=2026-13-01/a.csv", None),
        ("20260101/a.csv", None),
    ],
)
def test_path_date(rel: str, expected: date | None) -> None:
    assert path_date(rel) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-16T00:10:00Z", utc(2026, 11, 16, 0, 10)),
        ("2026-11-16T00:10:00.250Z", utc(2026, 11, 16, 0, 10, 0, 250000)),
        ("2026-11-16T03:10:00+03:00", utc(2026, 11, 16, 0, 10)),
        ("2026-11-15T19:10:00-05:00", utc(2026, 11, 16, 0, 10)),
        ("2026-11-16T00:10:00+0000", utc(2026, 11, 16, 0, 10)),
        ("2026-11-16 00:10:00", utc(2026, 11, 16, 0, 10)),
        ("2026-11-16T00:10:00", utc(2026, 11, 16, 0, 10)),
        ("2026-11-16T00:10", utc(2026, 11, 16, 0, 10)),
        ("2026-11-16", utc(2026, 11, 16)),
        (" 2026-11-16T00:10:00Z ", utc(2026, 11, 16, 0, 10)),
        ("1794792600", utc(2026, 11, 16, 1, 30)),
        ("1794792600000", utc(2026, 11, 16, 1, 30)),
        ("1794792600.5", utc(2026, 11, 16, 1, 30, 0, 500000)),
        ("yesterday", None),
        ("2026-13-01T00:00:00Z", None),
        ("2026-11-16T25:00:00Z", None),
        ("nan", None),
        ("", None),
    ],
)
def test_timestamp_text_rules(text: str, expected: datetime | None) -> None:
    assert parse_times_text(pl.Series([text])).to_list() == [expected]


def test_jsonl_corpus_file_rows_errors_and_values() -> None:
    frame, info = read("2026/11/16/ST-01/COMP-0001.jsonl")
    assert info.rows == frame.height == 19
    assert info.blank_lines == 2
    assert info.format == "jsonl"
    assert "unknown_sensor" in info.columns
    assert frame["_source_row"].to_list() == [
        0,
        1,
        2,
        4,
        5,
        6,
        7,
        8,
        9,
        10,
        11,
        12,
        13,
        14,
        15,
        17,
        18,
        19,
        20,
    ]
    errors = dict(zip(frame["_source_row"], frame["_parse_error"], strict=True))
    assert {r: e for r, e in errors.items() if e} == {
        1: "invalid_type",
        2: "malformed_record",
        4: "malformed_record",
        8: "unparseable_timestamp",
        14: "malformed_record",
        15: "invalid_type",
        18: "invalid_type",
    }
    by_row = {r["_source_row"]: r for r in frame.iter_rows(named=True)}
    assert by_row[1]["_parse_detail"] == "vibration_mms" and by_row[1]["vibration_mms"] is None
    assert by_row[1]["discharge_temp_f"] == 221.5  # the other values of the row are kept
    assert by_row[15]["_parse_detail"] == "vibration_mms,horsepower"
    assert by_row[4]["_raw_record"] == "this is not json"
    assert by_row[4]["_parse_detail"].startswith("invalid JSON")
    assert by_row[14]["_parse_detail"] == "expected a JSON object, got list"
    assert by_row[2]["_raw_record"].endswith('"gas_flow_mc')
    assert by_row[0]["_raw_record"] is None and by_row[0]["gas_flow_mcfd"] == 9100.0
    # NaN / Infinity tokens are kept as values, not errors
    assert math.isnan(by_row[5]["vibration_mms"])
    assert by_row[5]["discharge_temp_f"] == math.inf and by_row[5]["suction_pressure_psi"] == -math.inf
    assert by_row[19]["discharge_temp_f"] == math.inf  # 1e400 overflows to inf (Python path after Polars refused)
    # missing keys and nulls are nulls, not errors
    assert by_row[6]["discharge_temp_f"] is None and by_row[6]["_parse_error"] is None
    assert all(by_row[7][s] is None for s in SENSORS) and by_row[7]["_parse_error"] is None
    # timestamps: offsets, naive, epoch, future, backwards; `date` follows the UTC timestamp
    assert by_row[11]["timestamp"] == utc(2026, 11, 16, 1, 10)
    assert by_row[12]["timestamp"] == utc(2026, 11, 16, 1, 20)
    assert by_row[13]["timestamp"] == utc(2026, 11, 16, 1, 30)
    assert (by_row[9]["timestamp"], by_row[9]["date"]) == (utc(2099, 1, 1), date(2099, 1, 1))
    assert by_row[10]["date"] == date(2026, 11, 15)
    assert by_row[8]["timestamp"] is None and by_row[8]["date"] == date(2026, 11, 16)  # path date
    # an id is kept as text whatever its JSON type; numeric text is a number
    assert (by_row[17]["compressor_id"], by_row[17]["vibration_mms"]) == ("17", 3.4)
    assert frame["_source_file"].unique().to_list() == ["2026/11/16/ST-01/COMP-0001.jsonl"]


def test_jsonl_empty_blank_crlf_and_non_utf8_files() -> None:
    frame, info = read("2026/11/16/ST-01/COMP-0002.jsonl")
    assert (frame.height, info.rows, info.blank_lines, info.size_bytes) == (0, 0, 0, 0)
    frame, info = read("2026/11/16/ST-02/COMP-0003.jsonl")
    assert (frame.height, info.blank_lines) == (0, 3)
    frame, info = read("2026/11/17/ST-01/COMP-0001.jsonl")
    assert frame["_parse_error"].to_list() == [None, "malformed_record"]
    assert frame["vibration_mms"].to_list() == [3.0, None]
    assert "\ufffd" in frame["_raw_record"][1] and not frame["_raw_record"][1].endswith("\r")


def test_csv_corpus_file() -> None:
    frame, info = read("date=2026-11-16/part-0.csv")
    assert (info.rows, info.blank_lines, info.format) == (7, 1, "csv")
    assert "gas_flow_mcfd" not in info.columns and frame["gas_flow_mcfd"].null_count() == 7
    assert frame["_source_row"].to_list() == [1, 2, 3, 4, 6, 7, 8]  # physical lines: the header is line 0
    assert frame["_parse_error"].to_list() == [
        None,
        "invalid_type",
        "malformed_record",
        "malformed_record",
        "unparseable_timestamp",
        None,
        "invalid_type",
    ]
    assert frame["_parse_detail"].to_list()[2:4] == [
        "expected 7 fields (header), got 8",
        "expected 7 fields (header), got 3",
    ]
    assert frame["_raw_record"][3] == "COMP-0004,2026-11-16T00:30:00Z,3.1"
    quoted = frame.row(5, named=True)
    assert quoted["vibration_mms"] == 3.2 and math.isnan(quoted["discharge_temp_f"])
    assert quoted["suction_pressure_psi"] == math.inf and quoted["discharge_pressure_psi"] is None
    assert frame.row(6, named=True)["_parse_detail"] == "horsepower"  # "1,180.0" in quotes: one field, not a number


def test_gzipped_csv() -> None:
    frame, info = read("date=2026-11-17/part-1.csv.gz")
    assert info.rows == 2 and frame["_parse_error"].null_count() == 2
    assert frame["gas_flow_mcfd"].to_list() == [9000.0, 9001.0]


def test_parquet_string_timestamp_extra_and_missing_columns() -> None:
    frame, info = read("date=2026-11-16/part-1.parquet")
    assert info.columns == [
        "compressor_id",
        "timestamp",
        "vibration_mms",
        "discharge_temp_f",
        "suction_pressure_psi",
        "extra_col",
    ]
    assert frame["timestamp"].to_list() == [utc(2026, 11, 16), utc(2026, 11, 15, 23, 10), None, None]
    assert frame["vibration_mms"].to_list() == [3.0, 4.0, 5.0, None]  # ints become floats
    assert frame["_parse_error"].to_list() == [None, "invalid_type", "unparseable_timestamp", None]
    assert frame["date"].to_list() == [
        date(2026, 11, 16),
        date(2026, 11, 15),
        date(2026, 11, 16),
        date(2026, 11, 16),
    ]
    raw = json.loads(frame["_raw_record"][1])
    assert raw["suction_pressure_psi"] == "n/a" and raw["extra_col"] == "y"
    assert frame["horsepower"].null_count() == 4


def test_unreadable_parquet_is_one_malformed_row() -> None:
    frame, info = read("date=2026-11-17/part-0.parquet")
    assert info.error is not None and info.rows == 1
    row = frame.row(0, named=True)
    assert row["_parse_error"] == "malformed_record"
    assert row["_parse_detail"].startswith("unreadable parquet file")
    assert row["date"] == date(2026, 11, 17)


def test_typed_parquet_times_are_converted_to_utc(tmp_path: Path) -> None:
    table = pa.table(
        {
            "compressor_id": ["A", "B", "C"],
            "timestamp": pa.array([0, 60_000_000_000, None], pa.timestamp("ns", tz="America/Chicago")),
            "vibration_mms": pa.array([1, 2, 3], pa.int32()),
        }
    )
    pq.write_table(table, tmp_path / "x.parquet")
    naive = pa.table({"timestamp": pa.array([0], pa.timestamp("ms")), "horsepower": pa.array([True])})
    pq.write_table(naive, tmp_path / "y.parquet")
    frame, _ = read_raw_file(tmp_path / "x.parquet", tmp_path, PROFILE)
    assert frame["timestamp"].to_list() == [utc(1970, 1, 1), utc(1970, 1, 1, 0, 1), None]
    assert frame["vibration_mms"].to_list() == [1.0, 2.0, 3.0]
    frame, _ = read_raw_file(tmp_path / "y.parquet", tmp_path, PROFILE)
    assert frame["timestamp"].to_list() == [utc(1970, 1, 1)]
    assert frame.row(0, named=True)["_parse_error"] == "invalid_type"  # a boolean is not a reading
    assert frame["date"].to_list() == [date(1970, 1, 1)]


def _line(i: int) -> str:
    return json.dumps(
        {
            "compressor_id": f"COMP-{i % 7:04d}",
            "timestamp": f"2026-01-01T00:{i % 60:02d}:00Z",
            "vibration_mms": i,
        }
    )


def test_many_files_in_one_chunk_keep_file_and_line_lineage(tmp_path: Path) -> None:
    """Fast path, bisection and Python path together: each non-blank line is one row at its line number."""
    rng = random.Random(5)
    files, datas, expected = [], [], []
    for k in range(12):
        lines = []
        for i in range(rng.randint(0, 400)):
            kind = rng.random()
            if kind < 0.02:
                lines.append("")
            elif kind < 0.04:
                lines.append('{"compressor_id": "COMP-0001", "timestamp": "2026-01-01T00:00:00Z", "vibr')
            elif kind < 0.05:
                lines.append('{"compressor_id": "X", "timestamp": "2026-01-01T00:00:00Z", "vibration_mms": 1e999}')
            else:
                lines.append(_line(i))
            if lines[-1]:
                expected.append((f"f{k:02d}.jsonl", i, lines[-1]))
        text = "\n".join(lines) + ("\n" if k % 2 else "")  # half the files lack a final newline
        path = tmp_path / f"f{k:02d}.jsonl"
        path.write_text(text)
        files.append(raw_file(path, tmp_path))
        datas.append(path.read_bytes())
    frame, infos = read_chunk(files, datas, PROFILE)
    assert frame.height == len(expected) == sum(i.rows for i in infos)
    assert list(zip(frame["_source_file"], frame["_source_row"], strict=True)) == [(f, r) for f, r, _ in expected]
    bad = frame.filter(pl.col("_parse_error").is_not_null())
    texts = {(f, r): t for f, r, t in expected}
    for f, r, raw in bad.select("_source_file", "_source_row", "_raw_record").iter_rows():
        assert raw == texts[(f, r)]
    assert set(bad["_parse_error"]) <= {"malformed_record"}
    good = frame.filter(pl.col("_parse_error").is_null() & (pl.col("compressor_id") != "X"))
    assert good["vibration_mms"].to_list() == [float(r) for r in good["_source_row"]]
    assert (
        frame.filter(pl.col("compressor_id") == "X")["vibration_mms"].to_list()
        == [math.inf] * frame.filter(pl.col("compressor_id") == "X").height
    )


def test_gzip_jsonl_and_corrupt_gzip(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress((_line(1) + "\n" + _line(2)).encode()))
    (tmp_path / "b.jsonl.gz").write_bytes(b"not gzip")
    files = discover_files(tmp_path)
    frame, infos = read_chunk(files, [f.path.read_bytes() for f in files], PROFILE)
    assert [i.rows for i in infos] == [2, 1]
    assert infos[1].error is not None and infos[0].error is None
    assert frame["_parse_error"].to_list() == [None, None, "malformed_record"]

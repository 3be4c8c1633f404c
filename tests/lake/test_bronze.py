"""Bronze ingestion into real Delta tables: conservation, ledger, idempotence, dates, schema, recovery."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml

import altaviz.lake.bronze as bronze
from altaviz.lake.bronze import LEDGER_SCHEMA, ingest
from altaviz.lake.errors import SchemaMismatchError
from altaviz.lake.schema import bronze_schema
from altaviz.lake.tables import history, read_table, table_version
from altaviz.profiles import load_profile
from altaviz.profiles.model import Profile

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"
PROFILE = load_profile("compressor")
NOW = datetime(2026, 11, 18, 6, 0, tzinfo=UTC)
CORPUS_FILES = 9
CORPUS_ROWS = 37


@pytest.fixture()
def raw(tmp_path: Path) -> Path:
    """A private copy of the bad-input corpus (DIR with DIR/raw inside)."""
    shutil.copytree(CORPUS / "raw", tmp_path / "in" / "raw")
    return tmp_path / "in"


def expected_rows(path: Path) -> int:
    """Independent count: non-blank lines of text files (minus the CSV header), rows of Parquet files."""
    if path.suffix == ".parquet":
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception:  # noqa: BLE001 - unreadable: one malformed row
            return 1
    data = path.read_bytes()
    if path.suffix == ".gz":
        import gzip

        data = gzip.decompress(data)
    lines = [ln for ln in data.split(b"\n") if ln.strip()]
    is_csv = ".csv" in path.suffixes
    return max(len(lines) - 1, 0) if is_csv else len(lines)


def test_ingest_corpus_conserves_every_line_and_fills_the_ledger(raw: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    result = ingest(raw, lake, PROFILE, now=NOW)
    assert (result.files_seen, result.files_ingested, result.files_skipped) == (CORPUS_FILES, CORPUS_FILES, 0)
    assert result.rows == CORPUS_ROWS and result.blank_lines == 6
    assert result.parse_errors == {"invalid_type": 6, "malformed_record": 7, "unparseable_timestamp": 3}
    assert result.ingested_at == NOW and result.bronze_version == 0

    rows = read_table(lake, "bronze")
    assert rows.schema == bronze_schema(PROFILE)
    assert rows.height == CORPUS_ROWS
    assert rows["_ingested_at"].unique().to_list() == [NOW]
    assert rows["_batch_id"].unique().to_list() == [result.batch_id]
    per_file = dict(rows.group_by("_source_file").len().iter_rows())
    ledger = read_table(lake, "ledger").sort("source_file")
    for rel in ledger["source_file"]:
        assert per_file.get(rel, 0) == expected_rows(raw / "raw" / rel), rel
    assert set(per_file) <= set(ledger["source_file"])  # events/, reference/, hidden and .txt files ignored
    assert rows.group_by("_source_file", "_source_row").len()["len"].max() == 1  # one row per line
    assert dict(rows.group_by("date").len().iter_rows()) == result.rows_by_date
    assert set(result.rows_by_date) == {
        date(2026, 11, 15),
        date(2026, 11, 16),
        date(2026, 11, 17),
        date(2099, 1, 1),
    }
    counted = rows["_parse_error"].drop_nulls().value_counts()
    assert dict(counted.iter_rows()) == result.parse_errors

    assert ledger.schema == LEDGER_SCHEMA and ledger.height == CORPUS_FILES
    for r in ledger.iter_rows(named=True):
        data = (raw / "raw" / r["source_file"]).read_bytes()
        assert r["checksum"] == hashlib.sha256(data).hexdigest() and r["size_bytes"] == len(data)
        assert r["rows"] == per_file.get(r["source_file"], 0)
        assert r["batch_id"] == result.batch_id and r["ingested_at"] == NOW and r["date_scope"] is None
    by_file = {r["source_file"]: r for r in ledger.iter_rows(named=True)}
    assert by_file["2026/11/16/ST-01/COMP-0001.jsonl"]["blank_lines"] == 2
    assert by_file["2026/11/16/ST-01/COMP-0001.jsonl"]["dates"] == [
        date(2026, 11, 15),
        date(2026, 11, 16),
        date(2099, 1, 1),
    ]
    assert by_file["date=2026-11-16/part-1.parquet"]["columns"][-1] == "extra_col"
    assert by_file["date=2026-11-16/part-1.parquet"]["format"] == "parquet"
    assert by_file["date=2026-11-17/part-0.parquet"]["error"].startswith("ComputeError")
    assert by_file["2026/11/16/ST-01/COMP-0002.jsonl"]["rows"] == 0


def test_row_without_any_date_lands_on_the_ingestion_date(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "loose.jsonl").write_text('{"compressor_id": "COMP-0001", "vibration_mms": 1.0}\n')
    naive = datetime(2026, 11, 18, 6, 0)  # a naive `now` is taken as UTC
    result = ingest(tmp_path / "raw", tmp_path / "lake", PROFILE, now=naive)
    assert result.rows_by_date == {date(2026, 11, 18): 1}
    assert read_table(tmp_path / "lake", "bronze")["_ingested_at"].to_list() == [NOW]


def test_reingest_adds_nothing_whether_given_dir_or_dir_raw(raw: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    ingest(raw, lake, PROFILE, now=NOW)
    versions = (table_version(lake, "bronze"), table_version(lake, "ledger"))
    for given in (raw, raw / "raw"):
        again = ingest(given, lake, PROFILE)
        assert (again.files_seen, again.files_ingested, again.files_skipped) == (
            CORPUS_FILES,
            0,
            CORPUS_FILES,
        )
        assert again.rows == 0 and again.rows_by_date == {} and again.bronze_version is None
    assert (table_version(lake, "bronze"), table_version(lake, "ledger")) == versions
    assert read_table(lake, "bronze").height == CORPUS_ROWS


def test_changed_file_is_ingested_again(raw: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    ingest(raw, lake, PROFILE, now=NOW)
    target = raw / "raw" / "2026" / "11" / "16" / "ST-02" / "COMP-9999.jsonl"
    with target.open("a") as fh:
        fh.write('{"compressor_id": "COMP-9999", "timestamp": "2026-11-16T00:20:00Z", "vibration_mms": 3.2}\n')
    again = ingest(raw, lake, PROFILE)
    assert (again.files_ingested, again.files_skipped, again.rows) == (1, CORPUS_FILES - 1, 3)
    ledger = read_table(lake, "ledger", filters=pl.col("source_file") == "2026/11/16/ST-02/COMP-9999.jsonl")
    assert ledger.height == 2 and ledger["checksum"].n_unique() == 2
    assert read_table(lake, "bronze").height == CORPUS_ROWS + 3


def test_date_filter_on_dated_paths(raw: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    first = ingest(raw, lake, PROFILE, dates=[date(2026, 11, 17)], now=NOW)
    assert (first.files_seen, first.files_ingested) == (3, 3)
    assert read_table(lake, "bronze")["_source_file"].unique().sort().to_list() == [
        "2026/11/17/ST-01/COMP-0001.jsonl",
        "date=2026-11-17/part-0.parquet",
        "date=2026-11-17/part-1.csv.gz",
    ]
    rest = ingest(raw, lake, PROFILE)
    assert (rest.files_ingested, rest.files_skipped) == (CORPUS_FILES - 3, 3)
    assert read_table(lake, "bronze").height == CORPUS_ROWS
    assert ingest(raw, lake, PROFILE, dates=[date(2030, 1, 1)]).files_seen == 0


def test_date_filter_on_an_undated_file_takes_each_date_once(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    lines = [
        {"compressor_id": "A", "timestamp": "2026-11-16T01:00:00Z", "vibration_mms": 1.0},
        {"compressor_id": "A", "timestamp": "2026-11-17T01:00:00Z", "vibration_mms": 2.0},
        {"compressor_id": "A", "timestamp": "2026-11-17T02:00:00Z", "vibration_mms": 3.0},
        {"compressor_id": "A", "timestamp": None, "vibration_mms": 4.0},
    ]
    (tmp_path / "raw" / "all.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    lake = tmp_path / "lake"
    d16, d17 = date(2026, 11, 16), date(2026, 11, 17)
    assert ingest(tmp_path, lake, PROFILE, dates=[d16], now=NOW).rows_by_date == {d16: 1}
    assert ingest(tmp_path, lake, PROFILE, dates=[d16]).files_skipped == 1
    assert ingest(tmp_path, lake, PROFILE, dates=[d16, d17]).rows_by_date == {d17: 2}
    last = ingest(tmp_path, lake, PROFILE, now=NOW)  # no filter: only the row without a timestamp is left
    assert last.rows_by_date == {NOW.date(): 1}
    assert ingest(tmp_path, lake, PROFILE).files_skipped == 1
    values = read_table(lake, "bronze")["vibration_mms"].sort().to_list()
    assert values == [1.0, 2.0, 3.0, 4.0]
    scopes = read_table(lake, "ledger").sort("ingested_at", "batch_id")["date_scope"].to_list()
    assert sorted(scopes, key=str) == sorted([[d16], [d17], None], key=str)


def _profile_with_extra_sensor() -> Profile:
    from importlib import resources

    data = yaml.safe_load((resources.files("altaviz.profiles") / "compressor.yaml").read_text())
    data["sensors"]["oil_temp_f"] = {"unit": "degF", "physical_range": [0, 400], "normal_band": [150, 200]}
    return Profile.model_validate(data)


def test_schema_mismatch_is_refused_before_anything_is_written(raw: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    ingest(raw, lake, PROFILE, dates=[date(2026, 11, 17)], now=NOW)
    before = (table_version(lake, "bronze"), table_version(lake, "ledger"))
    with pytest.raises(SchemaMismatchError) as err:
        ingest(raw, lake, _profile_with_extra_sensor())
    message = str(err.value)
    assert "table bronze at" in message and "profile 'compressor'" in message
    assert "missing column 'oil_temp_f': expected Float64" in message and "got none (table)" in message
    assert (table_version(lake, "bronze"), table_version(lake, "ledger")) == before


def test_run_killed_between_bronze_and_ledger_commits_is_recovered(
    raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path / "lake"
    real = bronze.write_table

    def dies_on_ledger(lake_: Path, table: str, *args: object, **kwargs: object) -> object:
        if table == "ledger":
            raise KeyboardInterrupt("killed")
        return real(lake_, table, *args, **kwargs)

    monkeypatch.setattr(bronze, "write_table", dies_on_ledger)
    with pytest.raises(KeyboardInterrupt):
        ingest(raw, lake, PROFILE, now=NOW)
    monkeypatch.setattr(bronze, "write_table", real)
    assert read_table(lake, "bronze").height == CORPUS_ROWS
    batch = read_table(lake, "bronze")["_batch_id"][0]

    again = ingest(raw, lake, PROFILE)
    assert again.recovered_batches == 1
    assert (again.files_ingested, again.files_skipped, again.rows) == (0, CORPUS_FILES, 0)
    assert read_table(lake, "bronze").height == CORPUS_ROWS  # no duplicates
    ledger = read_table(lake, "ledger")
    assert ledger.height == CORPUS_FILES and ledger["batch_id"].unique().to_list() == [batch]
    assert ledger["rows"].sum() == CORPUS_ROWS and ledger["ingested_at"].unique().to_list() == [NOW]
    assert ingest(raw, lake, PROFILE).recovered_batches == 0


def test_empty_raw_dir_still_creates_empty_tables(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    result = ingest(tmp_path / "raw", tmp_path / "lake", PROFILE)
    assert (result.files_seen, result.rows) == (0, 0)
    assert read_table(tmp_path / "lake", "bronze").schema == bronze_schema(PROFILE)
    assert read_table(tmp_path / "lake", "ledger").height == 0


def test_bronze_history_and_time_travel(raw: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    first = ingest(raw, lake, PROFILE, dates=[date(2026, 11, 17)], now=NOW)
    second = ingest(raw, lake, PROFILE)
    commits = history(lake, "bronze")
    assert [c["version"] for c in commits] == [1, 0]
    assert [c["metadata"]["altaviz.batch_id"] for c in commits] == [second.batch_id, first.batch_id]
    manifest = json.loads(commits[1]["metadata"]["altaviz.files"])
    assert sorted(m[0] for m in manifest) == sorted(
        [
            "2026/11/17/ST-01/COMP-0001.jsonl",
            "date=2026-11-17/part-0.parquet",
            "date=2026-11-17/part-1.csv.gz",
        ]
    )
    assert read_table(lake, "bronze", version=0).height == first.rows
    assert read_table(lake, "bronze", dates=[date(2026, 11, 17)]).height == first.rows


def test_progress_steps_are_reported(raw: Path, tmp_path: Path) -> None:
    from contextlib import contextmanager

    seen: list[tuple[str, int | None, int]] = []

    class Recorder:
        @contextmanager
        def step(self, description: str, total: int | None = None):
            done = [0]

            class S:
                def advance(self, n: int = 1) -> None:
                    done[0] += n

            yield S()
            seen.append((description, total, done[0]))

    ingest(raw, tmp_path / "lake", PROFILE, progress=Recorder())
    assert seen == [
        ("bronze: checksum raw files", CORPUS_FILES, CORPUS_FILES),
        ("bronze: ingest", CORPUS_FILES, CORPUS_FILES),
    ]

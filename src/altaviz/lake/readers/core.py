"""Raw file discovery and reading into bronze-shaped rows (bronze columns but `_ingested_at`, `_batch_id`).

Layout accepted under a raw root (the directory given, or its `raw/` subdirectory when it has one):
any depth of folders; `reference/`, `events/` and hidden or `_`-prefixed entries are skipped. Formats by
extension: .jsonl / .ndjson / .json (JSON Lines), .csv (with a header), .parquet; text formats may be gzipped
(.jsonl.gz, .csv.gz). A date in the path (`date=YYYY-MM-DD` or `YYYY/MM/DD` folders) is the file's path date.

`_source_row` is the 0-based physical line number for text files (blank lines and the CSV header count, so
`sed -n "$((row + 1))p" file` shows the line) and the 0-based row number for Parquet. A file that cannot be
read at all (corrupt Parquet or gzip) yields one `malformed_record` row (`_source_row` 0, detail = reason).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from altaviz.lake.errors import LakeError
from altaviz.lake.readers.coerce import MALFORMED_RECORD, coerce_readings
from altaviz.lake.readers.delimited import read_csv_file
from altaviz.lake.readers.jsonl import read_jsonl
from altaviz.lake.readers.parquet import raw_records, read_parquet_bytes
from altaviz.lake.schema import reading_schema
from altaviz.profiles.model import Profile

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}
IGNORED_DIRS = frozenset({"reference", "events"})
_PATH_DATES = (
    re.compile(r"(?:^|/)date=(\d{4})-(\d{2})-(\d{2})(?:/|$)"),
    re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})(?:/|$)"),
)


@dataclass(frozen=True)
class RawFile:
    path: Path
    source_file: str  # POSIX path relative to the raw root
    format: str  # 'jsonl' | 'csv' | 'parquet'
    gzip: bool
    path_date: date | None


@dataclass
class FileInfo:
    source_file: str
    format: str
    checksum: str
    size_bytes: int
    rows: int
    blank_lines: int
    columns: list[str]
    error: str | None = None
    dates: list[date] = field(default_factory=list)


def checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def resolve_raw_root(raw_dir: Path | str) -> Path:
    """The directory given, or its `raw/` subdirectory (so DIR and DIR/raw name files identically)."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise LakeError(f"raw directory {raw_dir}: not found (expected a directory holding raw files)")
    return raw_dir / "raw" if (raw_dir / "raw").is_dir() else raw_dir


def detect_format(name: str) -> tuple[str, bool] | None:
    """(format, gzipped) from a file name, None when it is not a raw reading file."""
    lower = name.lower()
    gz = lower.endswith(".gz")
    stem = lower[:-3] if gz else lower
    fmt = FORMATS.get(os.path.splitext(stem)[1])
    if fmt is None or (gz and fmt == "parquet"):
        return None
    return fmt, gz


def path_date(source_file: str) -> date | None:
    for pattern in _PATH_DATES:
        m = pattern.search(source_file)
        if m:
            try:
                return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                return None
    return None


def _raw(path: Path, rel: str) -> RawFile:
    kind = detect_format(path.name)
    if kind is None:
        raise LakeError(
            f"raw file {path}: unsupported format (expected .jsonl/.ndjson/.json, .csv (optionally .gz) or .parquet)"
        )
    return RawFile(path, rel, kind[0], kind[1], path_date(rel))


def raw_file(path: Path, root: Path) -> RawFile:
    """Describe one raw file under the raw root `root`."""
    try:
        rel = Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        raise LakeError(f"raw file {path}: not under the raw root {root}") from None
    return _raw(Path(path), rel)


def discover_files(root: Path) -> list[RawFile]:
    """Every raw reading file under `root`, sorted by relative path."""
    out = []
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in IGNORED_DIRS and not d.startswith((".", "_"))]
        prefix = os.path.relpath(dirpath, root).replace(os.sep, "/")
        prefix = "" if prefix == "." else prefix + "/"
        for name in filenames:
            if not name.startswith((".", "_")) and detect_format(name) is not None:
                out.append(_raw(Path(dirpath) / name, prefix + name))
    return sorted(out, key=lambda f: f.source_file)


def _nulls(name: str, n: int, dtype: pl.DataType) -> pl.Series:
    return pl.repeat(None, n, dtype=dtype, eager=True).alias(name)


def _assemble(
    pre: pl.DataFrame,
    profile: Profile,
    files: list[RawFile],
    file_idx: np.ndarray,
    source_row: pl.Series,
    raw_lookup: Callable[[np.ndarray], list[str | None]],
) -> pl.DataFrame:
    """Typed, lineage-stamped bronze rows (without batch columns) from reader output `pre`."""
    n = pre.height
    typed, error, detail = coerce_readings(pre, profile)
    if "_malformed" in pre.columns and pre["_malformed"].null_count() < n:
        mal = pre["_malformed"]
        error = pl.select(pl.when(mal.is_not_null()).then(pl.lit(MALFORMED_RECORD)).otherwise(error)).to_series()
        detail = pl.select(pl.coalesce(mal, detail)).to_series()
    raw = _nulls("_raw_record", n, pl.String())
    bad = error.is_not_null().arg_true().to_numpy()
    if len(bad):
        raw = raw.scatter(bad, pl.Series(raw_lookup(bad), dtype=pl.String))
    if len(files) == 1:
        source = pl.repeat(files[0].source_file, n, dtype=pl.String, eager=True)
        pdate = pl.repeat(files[0].path_date, n, dtype=pl.Date, eager=True)
    else:
        source = pl.Series([f.source_file for f in files], dtype=pl.String).gather(file_idx)
        pdate = pl.Series([f.path_date for f in files], dtype=pl.Date).gather(file_idx)
    when = typed[profile.time_column].dt.date()
    return typed.with_columns(
        raw,
        error.alias("_parse_error"),
        detail.alias("_parse_detail"),
        source.alias("_source_file"),
        source_row.cast(pl.Int64).alias("_source_row"),
        (when.fill_null(pdate) if pdate.null_count() < n else when).alias("date"),
    )


def _unreadable(files: list[RawFile], k: int, profile: Profile, reason: str) -> pl.DataFrame:
    pre = pl.DataFrame({"_malformed": [f"unreadable {files[k].format} file: {reason}"]})
    row = pl.Series([0], dtype=pl.Int64)
    return _assemble(pre, profile, [files[k]], np.zeros(1, dtype=np.int64), row, lambda idx: [None] * len(idx))


def _decompress(f: RawFile, data: bytes) -> bytes:
    return gzip.decompress(data) if f.gzip else data


def _read_parquet(f: RawFile, content: bytes, info: FileInfo, profile: Profile, wanted: list[str]) -> pl.DataFrame:
    pre, info.columns = read_parquet_bytes(content, wanted)
    rows = pre["_source_row"]

    def lookup(idx: np.ndarray) -> list[str | None]:
        return list(raw_records(content, rows.gather(idx).to_list()))

    return _assemble(pre, profile, [f], np.zeros(pre.height, dtype=np.int64), rows, lookup)


def _read_csv(f: RawFile, content: bytes, info: FileInfo, profile: Profile, wanted: list[str]) -> pl.DataFrame:
    pre, lines, info.blank_lines, info.columns = read_csv_file(content, wanted)
    line = pre["_line"].to_numpy()
    rows = pl.Series(lines.line[line], dtype=pl.Int64)
    return _assemble(pre, profile, [f], np.zeros(pre.height, dtype=np.int64), rows, lambda i: lines.texts(line[i]))


def read_chunk(
    files: list[RawFile], datas: list[bytes], profile: Profile, checksums: list[str] | None = None
) -> tuple[pl.DataFrame, list[FileInfo]]:
    """Read raw files of one format (bytes already loaded) into bronze rows, plus one FileInfo per file."""
    if len({f.format for f in files}) > 1:
        raise LakeError(f"read_chunk: expected files of one format, got {sorted({f.format for f in files})}")
    wanted = list(reading_schema(profile))
    infos = [
        FileInfo(f.source_file, f.format, checksums[i] if checksums else checksum(d), len(d), 0, 0, [])
        for i, (f, d) in enumerate(zip(files, datas, strict=True))
    ]
    frames: list[pl.DataFrame] = []
    texts: list[tuple[int, bytes]] = []
    for k, (f, d) in enumerate(zip(files, datas, strict=True)):
        try:
            content = _decompress(f, d)
            if f.format == "parquet":
                frames.append(_read_parquet(f, content, infos[k], profile, wanted))
            elif f.format == "csv":
                frames.append(_read_csv(f, content, infos[k], profile, wanted))
            else:
                texts.append((k, content))
        except (OSError, EOFError, zlib.error, pl.exceptions.PolarsError) as exc:
            infos[k].error = f"{type(exc).__name__}: {exc}"
            frames.append(_unreadable(files, k, profile, infos[k].error))
    if texts:
        chunk = [files[k] for k, _ in texts]
        pre, lines, blanks, columns = read_jsonl([c for _, c in texts], wanted)
        line = pre["_line"].to_numpy()
        rows = pl.Series(lines.line[line], dtype=pl.Int64)
        frames.append(_assemble(pre, profile, chunk, lines.file[line], rows, lambda idx: lines.texts(line[idx])))
        for j, (k, _) in enumerate(texts):
            infos[k].blank_lines, infos[k].columns = blanks[j], columns[j]
    frame = pl.concat(frames) if len(frames) != 1 else frames[0]
    if texts and len(frames) > 1:  # unreadable files were appended before the JSONL rows: restore file order
        order = {f.source_file: i for i, f in enumerate(files)}
        frame = frame.sort(pl.col("_source_file").replace_strict(order, return_dtype=pl.Int64), "_source_row")
    if len(files) == 1:
        counts = {files[0].source_file: frame.height}
    else:
        counts = dict(frame.group_by("_source_file").len().iter_rows()) if frame.height else {}
    for info in infos:
        info.rows = counts.get(info.source_file, 0)
    return frame, infos


def read_raw_file(path: Path, raw_root: Path, profile: Profile) -> tuple[pl.DataFrame, FileInfo]:
    """Read one raw file into bronze rows (no `_ingested_at` / `_batch_id`; `date` null when neither the
    timestamp nor the path gives one: the batch fills in its ingestion date)."""
    root = Path(raw_root)
    if (root / "raw").is_dir() and Path(path).resolve().is_relative_to((root / "raw").resolve()):
        root = root / "raw"  # name the file as `ingest` does, whether given DIR or DIR/raw
    f = raw_file(Path(path), root)
    frame, infos = read_chunk([f], [f.path.read_bytes()], profile)
    return frame, infos[0]

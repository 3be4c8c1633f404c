"""Raw readers: JSONL, CSV and Parquet files -> bronze-shaped rows with lineage and parse errors."""

from altaviz.lake.readers.coerce import INVALID_TYPE, MALFORMED_RECORD, UNPARSEABLE_TIMESTAMP, coerce_readings
from altaviz.lake.readers.core import (
    FileInfo,
    RawFile,
    checksum,
    detect_format,
    discover_files,
    path_date,
    raw_file,
    read_chunk,
    read_raw_file,
    resolve_raw_root,
)

__all__ = [
    "INVALID_TYPE",
    "MALFORMED_RECORD",
    "UNPARSEABLE_TIMESTAMP",
    "FileInfo",
    "RawFile",
    "checksum",
    "coerce_readings",
    "detect_format",
    "discover_files",
    "path_date",
    "raw_file",
    "read_chunk",
    "read_raw_file",
    "resolve_raw_root",
]

"""Polars frame -> PostgreSQL binary COPY stream, vectorised with NumPy (no Python loop over rows).

The binary COPY format is a header, then per row an int16 field count and per field an int32 byte length
(-1 for NULL) followed by the value in network byte order, then an int16 -1 trailer. Rows are variable length
(text, NULLs), so a chunk of rows is laid out as a NumPy structured array with one fixed-size slot per field
(text padded to the longest value in the chunk) and the padding is squeezed out with one boolean mask. Text is
encoded once per distinct value and gathered by code, which suits short repetitive values (asset ids, sensor
names); a column of long, all-distinct strings would still work but pad every row to its longest value.

Supported PostgreSQL types: text, float8, int4, int8, bool, date, timestamptz (naive datetimes count as UTC).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence

import numpy as np
import polars as pl

from altaviz.errors import AltavizError

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in microseconds since 1970-01-01
_PG_EPOCH_DAYS = 10_957
_FIXED = {"float8": ">f8", "int4": ">i4", "int8": ">i8", "bool": "u1", "date": ">i4", "timestamptz": ">i8"}
PG_TYPES = frozenset({*_FIXED, "text"})
CHUNK_ROWS = 200_000


class CopyEncodeError(AltavizError):
    """A frame column cannot be encoded as the PostgreSQL type of its table column."""


def _numeric(s: pl.Series, pg_type: str, what: str) -> np.ndarray:
    """The non-null values of `s` as the NumPy dtype of `pg_type` (nulls filled with 0; masked later)."""
    try:
        if pg_type == "timestamptz":
            if not isinstance(s.dtype, pl.Datetime):
                raise TypeError(f"expected a Datetime column, got {s.dtype}")
            if s.dtype.time_zone is not None:
                s = s.dt.convert_time_zone("UTC")
            values = s.dt.epoch("us") - _PG_EPOCH_US
        elif pg_type == "date":
            if s.dtype == pl.String:
                s = s.str.to_date("%Y-%m-%d")
            values = s.cast(pl.Date).cast(pl.Int32) - _PG_EPOCH_DAYS
        elif pg_type == "bool":
            values = s.cast(pl.Boolean).cast(pl.UInt8)
        elif pg_type == "float8":
            values = s.cast(pl.Float64)
        else:
            values = s.cast(pl.Int32 if pg_type == "int4" else pl.Int64, strict=True)
    except (pl.exceptions.PolarsError, TypeError) as exc:
        raise CopyEncodeError(f"{what}: expected values convertible to {pg_type}, got {s.dtype} ({exc})") from exc
    return values.fill_null(0).to_numpy().astype(_FIXED[pg_type], copy=False)


def _text_table(s: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(code per row, padded [int32 length | utf-8 bytes] row per distinct value, byte length per value)."""
    uniques = s.drop_nulls().unique(maintain_order=True)
    codes = s.cast(pl.Enum(uniques.to_list())).to_physical().fill_null(0).to_numpy()
    encoded = [v.encode("utf-8") for v in uniques.to_list()] or [b""]
    width = max(len(b) for b in encoded)
    table = np.zeros((len(encoded), 4 + width), dtype=np.uint8)
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    table[:, :4] = lengths.astype(">i4").view(np.uint8).reshape(-1, 4)
    for i, b in enumerate(encoded):
        table[i, 4 : 4 + len(b)] = np.frombuffer(b, dtype=np.uint8)
    return codes.astype(np.int64, copy=False), table, lengths


def _encode_chunk(frame: pl.DataFrame, types: Sequence[str], table: str) -> bytes:
    n = frame.height
    fields: list[tuple[str, object]] = [("nf", ">i2")]
    fills: list[tuple[str, str, object]] = []  # (field name, kind, payload)
    # (offset, width, bytes of the slot in use per row, or None when all of it is)
    valid_spans: list[tuple[int, int, np.ndarray | None]] = []
    offset = 2
    for j, (name, pg_type) in enumerate(zip(frame.columns, types, strict=True)):
        s = frame.get_column(name)
        what = f"table {table}, column {name}"
        nulls = s.is_null().to_numpy() if s.null_count() else None
        if pg_type == "text":
            if s.dtype != pl.String:
                s = s.cast(pl.String)
            codes, table_bytes, lengths = _text_table(s)
            width = table_bytes.shape[1]
            fields.append((f"f{j}", ("u1", (width,))))
            block = table_bytes[codes]
            valid: np.ndarray | None = 4 + lengths[codes]
            if nulls is not None:
                block[nulls, :4] = 0xFF
                valid[nulls] = 4  # type: ignore[index]
            elif lengths.min() == width - 4:  # every value as long as the slot: nothing to squeeze out
                valid = None
            fills.append((f"f{j}", "block", block))
            valid_spans.append((offset, width, valid))
        else:
            dtype = _FIXED[pg_type]
            width = 4 + np.dtype(dtype).itemsize
            fields += [(f"l{j}", ">i4"), (f"f{j}", dtype)]
            lens = np.full(n, width - 4, dtype=np.int32)
            valid = None
            if nulls is not None:
                lens[nulls] = -1
                valid = np.where(nulls, 4, width)
            fills += [(f"l{j}", "value", lens), (f"f{j}", "value", _numeric(s, pg_type, what))]
            valid_spans.append((offset, width, valid))
        offset += width
    rows = np.empty(n, dtype=np.dtype(fields))
    rows["nf"] = len(types)
    for name, _, payload in fills:
        rows[name] = payload
    raw = rows.view(np.uint8).reshape(n, offset)
    if all(v is None for _, _, v in valid_spans):
        return raw.tobytes()
    mask = np.ones((n, offset), dtype=bool)
    for start, width, valid in valid_spans:
        if valid is not None:
            mask[:, start : start + width] = np.arange(width) < valid[:, None]
    return raw[mask].tobytes()


def copy_chunks(frame: pl.DataFrame, types: Sequence[str], table: str, chunk_rows: int = CHUNK_ROWS) -> Iterator[bytes]:
    """The complete binary COPY stream (header, rows, trailer) for `frame`, in pieces of `chunk_rows` rows."""
    unknown = sorted(set(types) - PG_TYPES)
    if unknown or len(types) != frame.width:
        raise CopyEncodeError(
            f"table {table}: expected one of {sorted(PG_TYPES)} for each of the {frame.width} columns, "
            f"got {list(types)}"
        )
    yield HEADER
    for start in range(0, frame.height, chunk_rows):
        yield _encode_chunk(frame.slice(start, chunk_rows), types, table)
    yield TRAILER

"""CSV with a header line: Polars' reader on the lines with the right field count, every cell kept as text.

The first non-blank line is the header. A data line whose field count differs from the header's is a
`malformed_record` (checked by counting commas; lines with quotes are split by Python's `csv`). One physical
line is one record: a quoted field that spans lines makes each of its lines malformed.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import polars as pl

from altaviz.lake.readers.lines import LineIndex


def _split(text: str) -> list[str]:
    return next(csv.reader([text]), [])


def _polars(buf: bytes, positions: list[int], n: int) -> pl.DataFrame | None:
    try:
        frame = pl.read_csv(
            io.BytesIO(buf),
            has_header=False,
            columns=positions,
            infer_schema=False,
            quote_char='"',
            encoding="utf8-lossy",
        )
    except Exception:  # noqa: BLE001 - fall back to Python's csv module
        return None
    return frame if frame.height == n else None


def read_csv_file(data: bytes, wanted: list[str]) -> tuple[pl.DataFrame, LineIndex, int, list[str]]:
    """Parse one CSV file.

    Returns (frame of the `wanted` columns present as text + `_malformed` + `_line`; the line index; blank
    lines; header columns).
    """
    lines = LineIndex.build([data])
    nonblank = np.flatnonzero(~lines.blank)
    blanks = int(lines.blank.sum())
    schema = {c: pl.String() for c in wanted}
    empty = pl.DataFrame(schema={**schema, "_malformed": pl.String(), "_line": pl.Int64()})
    if not len(nonblank):
        return empty, lines, blanks, []
    header = [h.strip() for h in _split(lines.text(int(nonblank[0])).removeprefix("\ufeff"))]
    rows = nonblank[1:]
    if not len(rows):
        return empty, lines, blanks, header
    n_fields = len(header)
    quoted = lines.counts(ord('"'))[rows] > 0
    good = (lines.counts(ord(","))[rows] == n_fields - 1) & ~quoted
    problems: dict[int, str] = {}
    for pos in np.flatnonzero(~good):
        got = len(_split(lines.text(int(rows[pos]))))
        if got == n_fields:
            good[pos] = True
        else:
            problems[pos] = f"expected {n_fields} fields (header), got {got}"
    positions = {c: header.index(c) for c in wanted if c in header}  # first occurrence of a duplicated name
    good_rows = rows[good]
    frame = None
    if len(good_rows) and positions:
        frame = _polars(lines.select(good_rows), sorted(set(positions.values())), len(good_rows))
        if frame is not None:
            by_pos = dict(zip(sorted(set(positions.values())), frame.columns, strict=True))
            frame = frame.select(pl.col(by_pos[p]).alias(c) for c, p in positions.items())
    if frame is None:  # no usable columns, or Polars disagreed: Python's csv module
        split = [_split(lines.text(int(i))) for i in good_rows]
        frame = pl.DataFrame(
            {c: [r[p] if r[p] != "" else None for r in split] for c, p in positions.items()},
            schema={c: pl.String() for c in positions},
        )
    line = pl.Series("_line", good_rows, dtype=pl.Int64)
    frame = (frame.hstack([line]) if frame.width else line.to_frame()).with_columns(
        pl.lit(None, pl.String).alias("_malformed")
    )
    if problems:
        bad_pos = np.fromiter(problems, dtype=np.int64)
        bad = pl.DataFrame(
            {
                "_malformed": list(problems.values()),
                "_line": rows[bad_pos],
            },
            schema={"_malformed": pl.String(), "_line": pl.Int64()},
        )
        frame = pl.concat([frame, bad], how="diagonal_relaxed").sort("_line")
    missing = [pl.lit(None, pl.String).alias(c) for c in wanted if c not in frame.columns]
    return frame.with_columns(missing).select(empty.columns), lines, blanks, header

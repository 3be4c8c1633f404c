"""JSON Lines: Polars' NDJSON reader on the clean lines, Python's `json` only for the suspect ones.

Lines that do not start with '{' and end with '}' go to Python directly. If Polars refuses the rest, lines
with a `NaN` / `Infinity` token (not JSON, but written by many loggers; Python reads it and bronze keeps the
value) go to Python too, and any block Polars still refuses is halved until the bad lines are isolated.
Every value of the reading columns is kept as text here (numbers as written); `coerce` types them.
"""

from __future__ import annotations

import io
import json

import numpy as np
import polars as pl

from altaviz.lake.readers.lines import LineIndex

_PYTHON_BLOCK = 16  # blocks this small are parsed line by line
_TOKENS = (b"NaN", b"Infinity")


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, allow_nan=True)


def _unbraced(lines: LineIndex, idx: np.ndarray) -> np.ndarray:
    """Lines that do not start with '{' and end with '}' (truncated records, garbage, arrays, scalars)."""
    arr = np.frombuffer(lines.data, dtype=np.uint8)
    first = arr[lines.starts[idx]]
    stops = lines.stops[idx]
    last = arr[stops - 1]
    cr = (last == 13) & (stops - 2 >= lines.starts[idx])
    last = np.where(cr, arr[np.maximum(stops - 2, 0)], last)
    return (first != ord("{")) | (last != ord("}"))


def _with_tokens(lines: LineIndex, idx: np.ndarray) -> np.ndarray:
    """Lines holding a NaN / Infinity token (valid for Python's json, refused by Polars)."""
    out = np.zeros(len(idx), dtype=bool)
    for token in _TOKENS:
        hits = []
        pos = lines.data.find(token)
        while pos != -1:
            hits.append(pos)
            pos = lines.data.find(token, pos + 1)
        if hits:
            line_of_hit = np.searchsorted(lines.starts, np.asarray(hits), side="right") - 1
            out |= np.isin(idx, line_of_hit)
    return out


def _polars(buf: bytes, schema: dict[str, pl.DataType]) -> pl.DataFrame | None:
    try:
        return pl.read_ndjson(io.BytesIO(buf), schema=schema)
    except Exception:  # noqa: BLE001 - any rejection sends the block to the slower paths
        return None


def _fast(lines: LineIndex, idx: np.ndarray, schema: dict[str, pl.DataType]) -> tuple[list[pl.DataFrame], list]:
    """Parse lines `idx` with Polars; return (frames with `_line`, arrays of lines Polars rejected)."""
    frame = _polars(lines.select(idx), schema)
    if frame is not None and frame.height == len(idx):
        return [frame.with_columns(pl.Series("_line", idx, dtype=pl.Int64))], []
    if len(idx) <= _PYTHON_BLOCK:
        return [], [idx]
    mid = len(idx) // 2
    frames, rejected = _fast(lines, idx[:mid], schema)
    more_frames, more_rejected = _fast(lines, idx[mid:], schema)
    return frames + more_frames, rejected + more_rejected


def _python(lines: LineIndex, idx: np.ndarray, wanted: list[str]) -> tuple[pl.DataFrame, dict[int, list[str]]]:
    """Parse lines one by one; malformed lines get a `_malformed` message. Also returns keys per file."""
    cols: dict[str, list[str | None]] = {c: [] for c in wanted}
    malformed: list[str | None] = []
    keys: dict[int, list[str]] = {}
    for i in idx:
        raw = lines.data[lines.starts[i] : lines.stops[i]]
        problem = None
        try:
            obj = json.loads(raw)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            obj, problem = None, f"invalid JSON: {exc}"
        if problem is None and not isinstance(obj, dict):
            problem = f"expected a JSON object, got {type(obj).__name__}"
        malformed.append(problem)
        if problem is not None:
            for c in wanted:
                cols[c].append(None)
            continue
        known = keys.setdefault(int(lines.file[i]), [])
        known.extend(k for k in obj if k not in known)
        for c in wanted:
            cols[c].append(_as_text(obj.get(c)))
    schema = {c: pl.String() for c in wanted}
    frame = pl.DataFrame(cols, schema=schema).with_columns(
        pl.Series("_malformed", malformed, dtype=pl.String),
        pl.Series("_line", idx, dtype=pl.Int64),
    )
    return frame, keys


def _first_keys(lines: LineIndex, nonblank: np.ndarray, n_files: int) -> list[list[str]]:
    """Keys of each file's first line that parses as an object (the ledger's column list)."""
    out: list[list[str]] = [[] for _ in range(n_files)]
    if not len(nonblank):
        return out
    files = lines.file[nonblank]
    firsts = np.flatnonzero(np.concatenate(([True], files[1:] != files[:-1])))
    for pos in firsts:
        f = int(files[pos])
        for i in nonblank[pos : pos + 5]:
            if lines.file[i] != f:
                break
            try:
                obj = json.loads(lines.data[lines.starts[i] : lines.stops[i]])
            except ValueError:
                continue
            if isinstance(obj, dict):
                out[f] = list(obj)
                break
    return out


def read_jsonl(parts: list[bytes], wanted: list[str]) -> tuple[pl.DataFrame, LineIndex, list[int], list[list[str]]]:
    """Parse JSONL files read as one chunk.

    Returns (frame of `wanted` as text + `_malformed` + `_line`, sorted by line; the line index; blank lines
    per file; keys per file).
    """
    lines = LineIndex.build(parts)
    nonblank = np.flatnonzero(~lines.blank)
    schema = {c: pl.String() for c in wanted}
    suspect = _unbraced(lines, nonblank) if len(nonblank) else np.zeros(0, dtype=bool)
    frames: list[pl.DataFrame] = []
    rejected: list[np.ndarray] = [nonblank[suspect]]
    good = nonblank[~suspect]
    whole = _polars(lines.select(good), schema) if len(good) else None
    if whole is not None and whole.height == len(good):
        frames = [whole.with_columns(pl.Series("_line", good, dtype=pl.Int64))]
    elif len(good):  # look for NaN / Infinity first, then isolate what else Polars refuses
        tokens = _with_tokens(lines, good)
        rejected.append(good[tokens])
        frames, more = _fast(lines, good[~tokens], schema)
        rejected += more
    slow = np.sort(np.concatenate(rejected)) if rejected else np.zeros(0, dtype=np.int64)
    columns = _first_keys(lines, nonblank, len(parts))
    if len(slow):
        frame, keys = _python(lines, slow, wanted)
        frames.append(frame)
        for f, ks in keys.items():
            columns[f] = columns[f] + [k for k in ks if k not in columns[f]]
    frames = [
        f if "_malformed" in f.columns else f.with_columns(pl.lit(None, pl.String).alias("_malformed")) for f in frames
    ]
    empty = pl.DataFrame(schema={**schema, "_malformed": pl.String(), "_line": pl.Int64()})
    out = pl.concat([f.select(empty.columns) for f in frames]) if frames else empty
    if len(frames) > 1:
        out = out.sort("_line")
    blanks = np.bincount(lines.file[lines.blank], minlength=len(parts)).tolist()
    return out, lines, blanks, columns

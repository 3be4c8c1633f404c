"""Raw file layouts, written from a `SimulatedFleet`:

JSONL    raw/YYYY/MM/DD/<station_id>/<asset id>.jsonl  one JSON object per line; time ISO 8601 with 'Z'
Parquet  raw/date=YYYY-MM-DD/part-NNN.parquet          a few parts per day (station blocks); Datetime(us, UTC)
CSV      raw/date=YYYY-MM-DD/part-NNN.csv              same parts, header row, ISO 8601 timestamps

Plus reference/<metadata_file> (fleet metadata), events/failures.csv and events/maintenance.csv (ground
truth). Files hold no wall-clock values, so a given seed and start give byte-identical files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl

from altaviz.simulate.engine import SimulatedFleet

ISO = "%Y-%m-%dT%H:%M:%SZ"
FORMATS = ("parquet", "csv", "jsonl")
GARBAGE = (
    "\x00\x00\x00\x1b[0m modem reset",
    "<html><body>502 Bad Gateway</body></html>",
    "ERROR: buffer overflow on channel 3",
    "##### telemetry gateway restarted #####",
)
WRONG_VALUES = ("high", "ERR", "fault")
PARQUET_COMPRESSION = "snappy"


def _segments(keys: np.ndarray) -> list[tuple[int, int]]:
    """(offset, length) of the runs of equal consecutive keys."""
    if keys.size == 0:
        return []
    edges = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [keys.size]])
    return [(int(a), int(b - a)) for a, b in zip(starts, ends, strict=True)]


def _run(jobs: list[Callable[[], None]], workers: int | None = None) -> None:
    with ThreadPoolExecutor(max_workers=workers or max(1, min(4, os.cpu_count() or 1))) as pool:
        for f in [pool.submit(job) for job in jobs]:
            f.result()


def _day_strings(fleet: SimulatedFleet) -> tuple[np.ndarray, list[str]]:
    days = fleet.routing["file_date"].to_physical().to_numpy().astype(np.int64)
    return days, [str(np.datetime64(int(d), "D")) for d in range(int(days.min()), int(days.max()) + 1)]


def write_partitioned(fleet: SimulatedFleet, raw: Path, fmt: str) -> int:
    """Parquet or CSV day partitions, a few parts per day. Returns the number of files."""
    days, names = _day_strings(fleet)
    first = int(days.min()) if days.size else 0
    part = fleet.routing["part"].to_numpy().astype(np.int64)
    frame = fleet.readings
    if fmt == "csv":
        frame = frame.with_columns(pl.col(fleet.profile.time_column).dt.strftime(ISO))
    jobs = []
    for lo, n in _segments(days * 4096 + part):
        folder = raw / f"date={names[int(days[lo]) - first]}"
        folder.mkdir(parents=True, exist_ok=True)
        chunk = frame.slice(lo, n)
        path = folder / f"part-{int(part[lo]):03d}.{fmt}"
        if fmt == "parquet":
            jobs.append(lambda c=chunk, p=path: c.write_parquet(p, compression=PARQUET_COMPRESSION, statistics=True))
        else:
            jobs.append(lambda c=chunk, p=path: c.write_csv(p))
    _run(jobs)
    return len(jobs)


def break_line(line: str, how: int, row: int, sensors: list[str]) -> str:
    """A malformed JSONL line: 1 truncated JSON, 2 non-JSON garbage, 3 a sensor value of the wrong type."""
    if how == 1:
        return line[: max(1, (len(line) * (1 + row % 3)) // 4)]
    if how == 2:
        return GARBAGE[row % len(GARBAGE)]
    record = json.loads(line)
    record[sensors[row % len(sensors)]] = WRONG_VALUES[row % len(WRONG_VALUES)]
    return json.dumps(record, separators=(",", ":"))


def _write_lines(path: Path, lines: pl.Series) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(lines.to_list()))
        fh.write("\n")


def write_jsonl(fleet: SimulatedFleet, raw: Path) -> int:
    """One file per (day, station, asset). Returns the number of files."""
    profile = fleet.profile
    days, names = _day_strings(fleet)
    first = int(days.min()) if days.size else 0
    host = fleet.routing["host"].to_numpy().astype(np.int64)
    lines = fleet.readings.select(
        pl.struct(
            pl.col(profile.id_column),
            pl.col(profile.time_column).dt.strftime(ISO),
            *[pl.col(s) for s in profile.sensor_names],
        )
        .struct.json_encode()
        .alias("line")
    )["line"]
    broken = np.flatnonzero(fleet.routing["malformed"].to_numpy())
    if broken.size:
        how = fleet.routing["malformed"].to_numpy()[broken]
        fixed = [
            break_line(line, int(h), int(r), profile.sensor_names)
            for line, h, r in zip(lines.gather(broken).to_list(), how, broken, strict=True)
        ]
        lines = lines.scatter(broken, fixed)
    ids = fleet.metadata[profile.id_column].to_list()
    jobs = []
    for lo, n in _segments(days * (len(fleet.groups) + 1) + host):
        a = int(host[lo])
        y, m, d = names[int(days[lo]) - first].split("-")
        folder = raw / y / m / d / fleet.groups[a]
        folder.mkdir(parents=True, exist_ok=True)
        jobs.append(lambda c=lines.slice(lo, n), p=folder / f"{ids[a]}.jsonl": _write_lines(p, c))
    _run(jobs, workers=8)  # thousands of small files: bound by file-system latency, not CPU
    return len(jobs)


def _iso(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(pl.Datetime).dt.strftime(ISO))


def write_reference(fleet: SimulatedFleet, out: Path) -> None:
    (out / "reference").mkdir(parents=True, exist_ok=True)
    fleet.metadata.write_csv(out / "reference" / fleet.profile.asset.metadata_file)
    (out / "events").mkdir(parents=True, exist_ok=True)
    _iso(fleet.failures).write_csv(out / "events" / "failures.csv")
    _iso(fleet.maintenance).write_csv(out / "events" / "maintenance.csv")

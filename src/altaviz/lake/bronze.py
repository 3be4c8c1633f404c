"""Bronze ingestion: raw files -> LAKE/bronze/sensor_readings, plus a ledger of files (LAKE/bronze/_files).

One `ingest` call is one batch: one `_batch_id`, one `_ingested_at`, one append commit to bronze
(partitioned by `date`, streamed chunk of files by chunk), then one append commit to the ledger. Nothing is
lost: every non-blank line / row of every file becomes exactly one bronze row (blank lines are counted).

Idempotence. A file is identified by (source_file, sha256 of its bytes). A file already in the ledger with
the same checksum is skipped; a changed file is ingested again (silver resolves the duplicates). If a run
dies after the bronze commit and before the ledger commit, the next run first rebuilds the missing ledger
rows from that bronze commit's metadata (`altaviz.batch_id`, `altaviz.files`) and the batch's bronze rows,
so the files are not ingested twice.

Date filter. With `dates`, a file whose path carries a date (date=YYYY-MM-DD or YYYY/MM/DD) is read whole
when that date is wanted and ignored otherwise. A file without a path date is read and only its rows whose
timestamp falls on a wanted date are kept; the ledger records those dates as the file's `date_scope`, and
later runs add only the dates (or, without a filter, the rows) not yet ingested. Rows without a timestamp in
such a file wait for a run without a date filter.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from altaviz.lake.errors import LakeError
from altaviz.lake.readers import (
    FileInfo,
    RawFile,
    checksum,
    discover_files,
    read_chunk,
    read_raw_file,
    resolve_raw_root,
)
from altaviz.lake.schema import TIME, bronze_schema
from altaviz.lake.tables import check_schema, history, read_table, table_exists, write_table
from altaviz.profiles.model import Profile
from altaviz.progress import NullProgress, Progress, Step

__all__ = ["LEDGER_SCHEMA", "IngestResult", "ingest", "read_raw_file", "recover_ledger"]

LEDGER_SCHEMA = pl.Schema(
    {
        "source_file": pl.String(),
        "checksum": pl.String(),
        "size_bytes": pl.Int64(),
        "format": pl.String(),
        "rows": pl.Int64(),
        "blank_lines": pl.Int64(),
        "columns": pl.List(pl.String()),
        "dates": pl.List(pl.Date()),
        "date_scope": pl.List(pl.Date()),  # null: the whole file; else only rows on these dates were taken
        "error": pl.String(),  # why the file could not be read at all, else null
        "batch_id": pl.String(),
        "ingested_at": TIME,
    }
)
_CHUNK_BYTES = 4 << 20  # files are read and typed in chunks of about this many raw bytes
_CHUNK_FILES = 4000
_RECOVERY_DEPTH = 20  # bronze commits inspected for a missing ledger commit


@dataclass
class IngestResult:
    batch_id: str
    ingested_at: datetime
    files_seen: int
    files_ingested: int
    files_skipped: int
    rows: int
    rows_by_date: dict[date, int]
    parse_errors: dict[str, int]
    seconds: float
    blank_lines: int = 0
    recovered_batches: int = 0
    bronze_version: int | None = None


@dataclass
class _Planned:
    file: RawFile
    checksum: str
    size: int
    mtime_ns: int
    keep: set[date] | None = None  # only rows whose timestamp date is in it (undated files under a filter)
    exclude: set[date] = field(default_factory=set)  # dates already ingested for this checksum

    @property
    def scope(self) -> list[date] | None:
        return sorted(self.keep) if self.keep is not None else None


@dataclass
class _Stats:
    rows_by_date: Counter = field(default_factory=Counter)
    parse_errors: Counter = field(default_factory=Counter)
    infos: list[FileInfo] = field(default_factory=list)


def _utc(now: datetime | None) -> datetime:
    now = now or datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _coverage(lake: Path) -> dict[tuple[str, str], set[date] | None]:
    """(source_file, checksum) -> None when fully ingested, else the dates already ingested."""
    if not table_exists(lake, "ledger"):
        return {}
    out: dict[tuple[str, str], set[date] | None] = {}
    for source, digest, scope in read_table(
        lake, "ledger", columns=["source_file", "checksum", "date_scope"]
    ).iter_rows():
        key = (source, digest)
        if scope is None or out.get(key, set()) is None:
            out[key] = None
        else:
            out[key] = (out.get(key) or set()) | set(scope)
    return out


def _stat_hash(f: RawFile) -> tuple[str, int, int]:
    try:
        mtime = f.path.stat().st_mtime_ns
        data = f.path.read_bytes()
    except OSError as exc:
        raise LakeError(f"raw file {f.path}: cannot be read ({exc.strerror or exc})") from exc
    return checksum(data), len(data), mtime


def _plan(files: list[RawFile], lake: Path, wanted: set[date] | None, step: Step) -> list[_Planned]:
    coverage = _coverage(lake)
    plan = []
    with ThreadPoolExecutor(max_workers=2) as pool:  # hashlib and file reads release the GIL
        for f, (digest, size, mtime) in zip(files, pool.map(_stat_hash, files), strict=True):
            step.advance()
            key = (f.source_file, digest)
            if key in coverage and coverage[key] is None:
                continue
            p = _Planned(f, digest, size, mtime)
            if f.path_date is None:
                covered = coverage.get(key) or set()
                if wanted is not None:
                    p.keep = wanted - covered
                    if not p.keep:
                        continue
                p.exclude = covered
            plan.append(p)
    return plan


def _chunks(plan: list[_Planned]) -> Iterator[list[_Planned]]:
    chunk: list[_Planned] = []
    size = 0
    for p in plan:
        if chunk and (p.file.format != chunk[0].file.format or size >= _CHUNK_BYTES or len(chunk) >= _CHUNK_FILES):
            yield chunk
            chunk, size = [], 0
        chunk.append(p)
        size += p.size
    if chunk:
        yield chunk


def _read_again(p: _Planned) -> bytes:
    try:
        data = p.file.path.read_bytes()
        mtime = p.file.path.stat().st_mtime_ns
    except OSError as exc:
        raise LakeError(f"raw file {p.file.path}: cannot be read any more ({exc.strerror or exc})") from exc
    if len(data) != p.size or mtime != p.mtime_ns:
        raise LakeError(
            f"raw file {p.file.source_file}: changed while being ingested (expected {p.size} bytes as "
            f"checksummed, got {len(data)} bytes or a new modification time); run the ingestion again"
        )
    return data


def _apply_scope(frame: pl.DataFrame, chunk: list[_Planned], time_column: str) -> pl.DataFrame:
    """Drop rows of undated files outside their wanted dates or on dates already ingested."""
    scoped = [p for p in chunk if p.keep is not None or p.exclude]
    if not scoped:
        return frame
    rules = pl.DataFrame(
        {
            "_source_file": [p.file.source_file for p in scoped],
            "_keep": [p.scope for p in scoped],
            "_exclude": [sorted(p.exclude) for p in scoped],
        },
        schema={"_source_file": pl.String(), "_keep": pl.List(pl.Date()), "_exclude": pl.List(pl.Date())},
    )
    day = pl.col(time_column).dt.date()
    ok = (
        pl.when(pl.col("_keep").is_not_null())
        .then(pl.col("_keep").list.contains(day).fill_null(False))
        .otherwise(day.is_null() | ~pl.col("_exclude").list.contains(day))
    )
    joined = frame.join(rules, on="_source_file", how="left", maintain_order="left")
    return joined.filter(ok.fill_null(True)).drop("_keep", "_exclude")


def _frames(
    plan: list[_Planned], profile: Profile, now: datetime, batch_id: str, stats: _Stats, step: Step
) -> Iterator[pl.DataFrame]:
    schema = bronze_schema(profile)
    for chunk in _chunks(plan):
        datas = [_read_again(p) for p in chunk]
        frame, infos = read_chunk([p.file for p in chunk], datas, profile, [p.checksum for p in chunk])
        del datas
        frame = _apply_scope(frame, chunk, profile.time_column)
        frame = frame.with_columns(
            pl.col("date").fill_null(now.date()),
            pl.lit(now, dtype=TIME).alias("_ingested_at"),
            pl.lit(batch_id, dtype=pl.String).alias("_batch_id"),
        ).select([pl.col(c).cast(t) for c, t in schema.items()])
        landed: dict[str, Counter] = {}
        for source, day, n in frame.group_by("_source_file", "date").len().iter_rows():
            landed.setdefault(source, Counter())[day] += n
            stats.rows_by_date[day] += n
        for info in infos:
            by_day = landed.get(info.source_file, Counter())
            info.rows, info.dates = sum(by_day.values()), sorted(by_day)
        stats.infos.extend(infos)
        stats.parse_errors.update(dict(frame["_parse_error"].drop_nulls().value_counts().iter_rows()))
        step.advance(len(chunk))
        yield frame


def _ledger_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=LEDGER_SCHEMA) if rows else pl.DataFrame(schema=LEDGER_SCHEMA)


def recover_ledger(lake: Path) -> int:
    """Write the ledger rows of bronze batches whose ledger commit is missing (a run killed between the two
    commits). Returns how many batches were recovered."""
    if not table_exists(lake, "bronze"):
        return 0
    known: set[str] = set()
    if table_exists(lake, "ledger"):
        known = set(read_table(lake, "ledger", columns=["batch_id"])["batch_id"].unique().to_list())
    orphans = []
    for commit in history(lake, "bronze", limit=_RECOVERY_DEPTH):  # newest first
        batch = commit["metadata"].get("altaviz.batch_id")
        if batch is None:
            continue
        if batch in known:
            break
        orphans.append(commit["metadata"])
    rows = []
    for meta in orphans:
        batch = meta["altaviz.batch_id"]
        landed = read_table(lake, "bronze", columns=["_source_file", "date"], filters=pl.col("_batch_id") == batch)
        per_file = {
            r["_source_file"]: r
            for r in landed.group_by("_source_file")
            .agg(pl.len().alias("n"), pl.col("date").unique().sort())
            .iter_rows(named=True)
        }
        for source, digest, size, fmt, scope in json.loads(meta["altaviz.files"]):
            hit = per_file.get(source)
            rows.append(
                {
                    "source_file": source, "checksum": digest, "size_bytes": size, "format": fmt,
                    "rows": hit["n"] if hit else 0, "blank_lines": None, "columns": None,
                    "dates": hit["date"] if hit else [],
                    "date_scope": [date.fromisoformat(d) for d in scope] if scope is not None else None,
                    "error": None, "batch_id": batch,
                    "ingested_at": datetime.fromisoformat(meta["altaviz.ingested_at"]),
                }
            )  # fmt: skip
    if rows:
        write_table(lake, "ledger", _ledger_frame(rows), schema=LEDGER_SCHEMA)
    return len(orphans)


def ingest(
    raw_dir: Path,
    lake: Path,
    profile: Profile,
    *,
    dates: list[date] | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> IngestResult:
    """Ingest new or changed raw files under `raw_dir` (DIR or DIR/raw) into the bronze table of `lake`."""
    started = time.perf_counter()
    progress = progress or NullProgress()
    lake = Path(lake)
    now = _utc(now)
    batch_id = f"{now:%Y%m%dT%H%M%S}Z-{uuid.uuid4().hex[:8]}"
    schema = bronze_schema(profile)
    root = resolve_raw_root(raw_dir)
    check_schema(lake, "bronze", schema, what=f"the bronze schema of profile {profile.name!r}")
    check_schema(lake, "ledger", LEDGER_SCHEMA, what="the bronze ledger schema")
    recovered = recover_ledger(lake)
    wanted = set(dates) if dates is not None else None
    files = [f for f in discover_files(root) if wanted is None or f.path_date is None or f.path_date in wanted]
    with progress.step("bronze: checksum raw files", total=len(files)) as step:
        plan = _plan(files, lake, wanted, step)
    stats = _Stats()
    version = None
    if plan:
        manifest = [[p.file.source_file, p.checksum, p.size, p.file.format, p.scope] for p in plan]
        metadata = {
            "altaviz.batch_id": batch_id,
            "altaviz.ingested_at": now.isoformat(),
            "altaviz.files": json.dumps(manifest, default=str),
        }
        with progress.step("bronze: ingest", total=len(plan)) as step:
            frames = _frames(plan, profile, now, batch_id, stats, step)
            version = write_table(lake, "bronze", frames, schema=schema, partition_by=["date"], metadata=metadata)
        scopes = {p.file.source_file: p.scope for p in plan}
        ledger = [
            {
                "source_file": i.source_file, "checksum": i.checksum, "size_bytes": i.size_bytes,
                "format": i.format, "rows": i.rows, "blank_lines": i.blank_lines, "columns": i.columns,
                "dates": i.dates, "date_scope": scopes[i.source_file], "error": i.error, "batch_id": batch_id,
                "ingested_at": now,
            }
            for i in stats.infos
        ]  # fmt: skip
        write_table(lake, "ledger", _ledger_frame(ledger), schema=LEDGER_SCHEMA)
    if not table_exists(lake, "bronze"):  # an empty lake still gets its (empty) tables
        version = write_table(lake, "bronze", pl.DataFrame(schema=schema), partition_by=["date"])
    if not table_exists(lake, "ledger"):
        write_table(lake, "ledger", _ledger_frame([]), schema=LEDGER_SCHEMA)
    return IngestResult(
        batch_id=batch_id,
        ingested_at=now,
        files_seen=len(files),
        files_ingested=len(plan),
        files_skipped=len(files) - len(plan),
        rows=sum(stats.rows_by_date.values()),
        rows_by_date=dict(sorted(stats.rows_by_date.items())),
        parse_errors=dict(sorted(stats.parse_errors.items())),
        seconds=time.perf_counter() - started,
        blank_lines=sum(i.blank_lines for i in stats.infos),
        recovered_batches=recovered,
        bronze_version=version,
    )

"""Per-message decoding and validation of a micro-batch, with the silver rules of the batch pipeline.

One message is one reading (a JSON object: asset id, timestamp, every sensor). A micro-batch is decoded with
the bronze readers (`read_jsonl` + `coerce_readings`, so JSON typing is the same as for JSONL files) and
validated with the silver rule renderers of the Polars engine (`pre_dedup_checks`, `value_checks`,
`split_by_checks`): same rules, same order, same reasons. The message's publish time (Kafka timestamp) stands for the
ingestion time, so the `future_timestamp` rule gives the same answer when a message is replayed.

Stream-specific steps, in this order, after the silver rules:
  late       the reading's window was already closed for its partition (event time < the partition's closed
             mark: floor((watermark - grace) / window) * window, the watermark being the largest accepted event
             time of earlier messages of that partition, message by message, so the answer does not depend on
             how messages were batched)
  duplicate  an earlier message of the same partition had the same (asset id, timestamp)
Silver rule 10 (per (asset, date) 4-sigma outliers) needs a whole day of data and is left to the batch ETL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from altaviz.engines.polars_engine.gold import status_expr
from altaviz.engines.polars_engine.silver import pre_dedup_checks, split_by_checks, value_checks
from altaviz.lake.readers.coerce import MALFORMED_RECORD, coerce_readings
from altaviz.lake.readers.jsonl import read_jsonl
from altaviz.lake.schema import TIME, reading_schema
from altaviz.profiles.model import Profile
from altaviz.profiles.spec import STATUS_LEVELS, feature_spec

LATE = "late"
DUPLICATE = "duplicate"
META = ("_partition", "_offset", "_published_at")


@dataclass
class Decoded:
    """Accepted readings and rejected messages of one micro-batch (both keep `_partition`, `_offset`,
    `_published_at`; rejected rows carry `_reason`, `_reason_detail` and `_i`, the message's index in the batch)."""

    accepted: pl.DataFrame
    rejected: pl.DataFrame


def _clean(value: bytes | None) -> bytes:
    """One message as one JSON line: inner line breaks become spaces; an empty message a non-JSON token."""
    if not value or not value.strip():
        return b"<empty>"
    if b"\n" in value or b"\r" in value:
        return value.replace(b"\r", b" ").replace(b"\n", b" ")
    return value


def _fast_lines(values: list[bytes | None], wanted: list[str]) -> pl.DataFrame | None:
    """The usual case without a Python pass over the messages: every message one non-blank line. None when
    any message is empty, blank or spans lines (then each message is cleaned first)."""
    try:
        data = b"\n".join(values)  # type: ignore[arg-type]  # a None message raises TypeError
    except TypeError:
        return None
    if data.count(b"\n") != len(values) - 1 or b"\r" in data:
        return None
    pre, _, _, _ = read_jsonl([data], wanted)
    return pre if pre.height == len(values) else None  # a blank message was skipped: clean them all


def decode(
    values: list[bytes | None], partitions: np.ndarray, offsets: np.ndarray, published_us: np.ndarray, profile: Profile
) -> pl.DataFrame:
    """Messages -> typed reading columns + `_parse_error` / `_parse_detail` + message coordinates + `_i` (the
    message's index in `values`)."""
    n = len(values)
    wanted = list(reading_schema(profile))
    pre = _fast_lines(values, wanted)
    if pre is None:
        pre, _, _, _ = read_jsonl([b"\n".join(_clean(v) for v in values)], wanted)
    if pre.height != n:  # cannot happen with one line per message; guard the alignment all the same
        raise RuntimeError(f"micro-batch: expected {n} decoded lines, got {pre.height}")
    typed, error, detail = coerce_readings(pre.drop("_malformed", "_line"), profile)
    malformed = pre["_malformed"]
    if malformed.null_count() < n:
        error = pl.select(pl.when(malformed.is_not_null()).then(pl.lit(MALFORMED_RECORD)).otherwise(error)).to_series()
        detail = pl.select(pl.coalesce(malformed, detail)).to_series()
    published = pl.Series("_published_at", published_us, dtype=pl.Int64).cast(TIME)
    return typed.with_columns(
        error.alias("_parse_error"),
        detail.alias("_parse_detail"),
        published.alias("_ingested_at"),
        pl.Series("_partition", partitions, dtype=pl.Int32),
        pl.Series("_offset", offsets, dtype=pl.Int64),
        published,
        pl.Series("_i", np.arange(n, dtype=np.int64)),
    )


def check(frame: pl.DataFrame, known_ids: pl.Series, profile: Profile) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(readings passing silver rules 1-5 and 7-9, rejected rows with `_reason` / `_reason_detail`)."""
    ok, pre = split_by_checks(frame, pre_dedup_checks(profile, known_ids), parse_column="_parse_error")
    ok, values = split_by_checks(ok, value_checks(profile))
    return ok, pl.concat([pre, values])


def closed_mark(watermark_us: np.ndarray, window_us: int, grace_us: int) -> np.ndarray:
    """Start of the first window still open: floor((watermark - grace) / window) * window (epoch us)."""
    return np.floor_divide(watermark_us - grace_us, window_us) * window_us


def route_late(
    ok: pl.DataFrame, watermarks: dict[int, int | None], window_us: int, grace_us: int, time_column: str
) -> tuple[pl.DataFrame, pl.DataFrame, dict[int, int]]:
    """Split off late readings; return (on-time, late with reasons, watermark per partition after the batch).

    `watermarks` holds each partition's watermark (epoch us) before the batch, None when it has none yet."""
    if ok.height == 0:
        return ok, ok.with_columns(_reason=pl.lit(LATE), _reason_detail=pl.lit(None, pl.String)), {}
    ok = ok.sort("_partition", "_offset")
    ts = ok.get_column(time_column).dt.epoch("us").to_numpy()
    lowest = np.iinfo(np.int64).min // 2
    known = {int(p): (w if w is not None else lowest) for p, w in watermarks.items()}
    start_wm = (
        ok.get_column("_partition").replace_strict(known, default=lowest, return_dtype=pl.Int64).to_numpy()
        if known
        else np.full(ok.height, lowest, dtype=np.int64)
    )
    running = ok.select(pl.col(time_column).dt.epoch("us").cum_max().shift(1).over("_partition")).to_series()
    before = np.maximum(start_wm, running.fill_null(lowest).to_numpy())
    mark = closed_mark(before, window_us, grace_us)
    late = ts < mark
    after = {
        int(p): int(max(watermarks.get(int(p)) or lowest, m))
        for p, m in ok.group_by("_partition").agg(pl.col(time_column).dt.epoch("us").max()).iter_rows()
    }
    mask = pl.Series(late)
    marks = pl.Series(mark).cast(pl.Int64).cast(TIME).dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ")
    rejected = ok.filter(mask).with_columns(
        _reason=pl.lit(LATE), _reason_detail=pl.lit("window closed at ") + marks.filter(mask)
    )
    return ok.filter(~mask), rejected, after


def drop_duplicates(ok: pl.DataFrame, profile: Profile) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Keep the first message (by partition, offset) of each (asset id, timestamp); the rest are rejected."""
    key = [profile.id_column, profile.time_column]
    dup = ok.select(pl.struct(key).is_first_distinct().not_()).to_series()  # `ok` is sorted by partition, offset
    if not dup.any():
        return ok, ok.clear().with_columns(_reason=pl.lit(DUPLICATE), _reason_detail=pl.lit(None, pl.String))
    rejected = ok.filter(dup).with_columns(
        _reason=pl.lit(DUPLICATE), _reason_detail=pl.lit("earlier message in this micro-batch")
    )
    return ok.filter(~dup), rejected


def rule_flags(ok: pl.DataFrame, metadata: pl.DataFrame, profile: Profile) -> pl.DataFrame:
    """`alert_mask` (bit i set when sensor i, profile order, is at warning or critical by the profile's
    thresholds) and `rule_status` (the worst sensor status: normal / warning / critical), one row per reading."""
    rules = {r.sensor: r for r in feature_spec(profile).statuses}
    needed = sorted({r.relative_to for r in rules.values() if r.relative_to})
    frame = ok.select(profile.id_column, *profile.sensor_names)
    if needed:
        frame = frame.join(
            metadata.select(profile.id_column, *needed), on=profile.id_column, how="left", maintain_order="left"
        )
    if not rules:
        return pl.DataFrame({"alert_mask": [0] * ok.height, "rule_status": ["normal"] * ok.height},
                            schema={"alert_mask": pl.Int32, "rule_status": pl.String})  # fmt: skip
    levels = pl.Enum(list(STATUS_LEVELS))
    statuses = frame.select([status_expr(rules[s]).alias(s) for s in profile.sensor_names if s in rules])
    bits = [
        pl.when(pl.col(s) != "normal").then(1 << i).otherwise(0)
        for i, s in enumerate(profile.sensor_names)
        if s in rules
    ]
    worst = pl.max_horizontal([pl.col(s).cast(levels).to_physical() for s in statuses.columns])
    return statuses.select(
        pl.sum_horizontal(bits).fill_null(0).cast(pl.Int32).alias("alert_mask"),
        worst.cast(pl.UInt32)
        .replace_strict(list(range(len(STATUS_LEVELS))), list(STATUS_LEVELS), return_dtype=pl.String)
        .alias("rule_status"),
    )


def validate_batch(
    frame: pl.DataFrame,
    metadata: pl.DataFrame,
    watermarks: dict[int, int | None],
    profile: Profile,
    window_us: int,
    grace_us: int,
) -> tuple[Decoded, dict[int, int]]:
    """Silver rules, then late routing, then in-batch duplicates. Returns the split and new watermarks."""
    known = metadata.get_column(profile.id_column).cast(pl.String)
    ok, bad = check(frame, known, profile)
    ok, late, after = route_late(ok, watermarks, window_us, grace_us, profile.time_column)
    ok, dups = drop_duplicates(ok, profile)
    ok = pl.concat([ok, rule_flags(ok, metadata, profile)], how="horizontal")
    columns = [*frame.columns, "_reason", "_reason_detail"]
    rejected = pl.concat([r.select(columns) for r in (bad, late, dups)])
    return Decoded(ok, rejected), after

"""Pure Polars transforms from silver (and the quality report) to the rows of the serving tables. No I/O.

Every output frame has exactly the columns of its table (migrations/versions/0001_*). The serving tables call
the asset id `compressor_id` whatever the profile's id column is named; these functions rename it.

hourly_aggregates  one row per asset x sensor x UTC hour with at least one finite reading: mean, min, max
                   and count of the readings in [hour_start, hour_start + 1h).
threshold_alerts   one row per asset x sensor x UTC hour x severity reached. Thresholds are inclusive
                   (x >= high, x <= low); `relative_to` multiplies them by that metadata column of the same
                   row. A reading counts for the highest severity it reaches only (a critical reading is not
                   also a warning). value = the worst reading of that severity in the hour (max on the high
                   side, min on the low side); threshold = the effective threshold it crossed; readings = how
                   many readings reached that severity; first_seen = the earliest of them. Should one hour
                   hold readings of one severity on both sides of a sensor with high and low limits, value
                   and threshold describe the high side and readings counts both.
quality_rows       a quality-report dict flattened to (date, layer, metric, value, details) rows.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import polars as pl

from altaviz.errors import AltavizError
from altaviz.profiles.model import Profile

ASSET_ID = "compressor_id"
TIME = pl.Datetime("us", "UTC")

AGG_SCHEMA = pl.Schema(
    {
        ASSET_ID: pl.String(),
        "sensor": pl.String(),
        "hour_start": TIME,
        "mean": pl.Float64(),
        "min": pl.Float64(),
        "max": pl.Float64(),
        "count": pl.Int32(),
    }
)
ALERT_SCHEMA = pl.Schema(
    {
        ASSET_ID: pl.String(),
        "hour_start": TIME,
        "sensor": pl.String(),
        "severity": pl.String(),
        "value": pl.Float64(),
        "threshold": pl.Float64(),
        "readings": pl.Int32(),
        "first_seen": TIME,
    }
)
QUALITY_SCHEMA = pl.Schema(
    {
        "date": pl.Date(),
        "layer": pl.String(),
        "metric": pl.String(),
        "value": pl.Float64(),
        "details": pl.String(),  # JSON text; the table column is jsonb
    }
)
_KEY_FIELDS = ("date", "layer")


class PublishError(AltavizError):
    """Input to the serving transforms does not have the expected shape."""


def _require(frame: pl.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise PublishError(f"{what}: expected columns {missing} (from the profile), got {frame.columns}")


def _utc(frame: pl.DataFrame, column: str, what: str) -> pl.Expr:
    dtype = frame.schema[column]
    if not isinstance(dtype, pl.Datetime):
        raise PublishError(f"{what}: expected column {column!r} to be a UTC Datetime, got {dtype}")
    expr = pl.col(column)
    if dtype.time_zone is None:
        expr = expr.dt.replace_time_zone("UTC")
    elif dtype.time_zone != "UTC":
        expr = expr.dt.convert_time_zone("UTC")
    return expr.dt.cast_time_unit("us")


def hourly_aggregates(silver: pl.DataFrame, profile: Profile) -> pl.DataFrame:
    """Hourly mean/min/max/count per asset and sensor, long format (columns of `sensor_readings_agg`)."""
    id_col, time_col, sensors = profile.id_column, profile.time_column, profile.sensor_names
    _require(silver, [id_col, time_col, *sensors], "silver frame")
    hour = _utc(silver, time_col, "silver frame").dt.truncate("1h").alias("hour_start")
    values = [pl.col(s).cast(pl.Float64).fill_nan(None).alias(s) for s in sensors]
    wide = (
        silver.lazy()
        .select(pl.col(id_col).cast(pl.String).alias(ASSET_ID), hour, *values)
        .group_by(ASSET_ID, "hour_start")
        .agg(
            agg
            for s in sensors
            for agg in (
                pl.col(s).mean().alias(f"{s}\x00mean"),
                pl.col(s).min().alias(f"{s}\x00min"),
                pl.col(s).max().alias(f"{s}\x00max"),
                pl.col(s).count().cast(pl.Int32).alias(f"{s}\x00count"),
            )
        )
    )
    # rows ordered by (asset, sensor, hour) through one Int64 key (asset rank, sensor rank, hour number): the
    # primary key's order, so the server's index build finds them sorted; cheaper than a String sort
    hours = (pl.col("hour_start").dt.epoch("us") - pl.col("hour_start").dt.epoch("us").min()) // 3_600_000_000
    wide = wide.with_columns(
        _base=(pl.col(ASSET_ID).rank("dense").cast(pl.Int64) - 1) * (len(sensors) * (hours.max() + 1)) + hours,
        _span=hours.max() + 1,
    )
    rank = {s: i for i, s in enumerate(sorted(sensors))}
    parts = [
        wide.select(
            pl.col(ASSET_ID),
            pl.lit(s, pl.String).alias("sensor"),
            pl.col("hour_start"),
            *(pl.col(f"{s}\x00{stat}").alias(stat) for stat in ("mean", "min", "max", "count")),
            (pl.col("_base") + rank[s] * pl.col("_span")).alias("_key"),
        ).filter(pl.col("count") > 0)
        for s in sensors
    ]
    out = pl.concat(parts).sort("_key").collect()
    return out.select(pl.col(name).cast(dtype) for name, dtype in AGG_SCHEMA.items())


def _zone_exprs(profile: Profile, sensor: str) -> tuple[pl.Expr, pl.Expr, pl.Expr] | None:
    """(severity, side, effective threshold) of a reading: the highest zone it reaches, or null."""
    spec = profile.sensors[sensor]
    limits = spec.thresholds()  # critical first
    if not limits:
        return None
    x = pl.col(sensor).cast(pl.Float64).fill_nan(None)  # NaN would compare above every threshold
    factor = pl.lit(1.0) if spec.relative_to is None else pl.col(spec.relative_to).cast(pl.Float64)
    severity: Any = pl
    side: Any = pl
    threshold: Any = pl
    # within one severity, the high side is tested first (see the module docstring)
    ordered = sorted(limits, key=lambda t: (t[0] != "critical", t[1] != "high"))
    for sev, s, value in ordered:
        limit = factor * value
        hit = (x >= limit) if s == "high" else (x <= limit)
        severity = severity.when(hit).then(pl.lit(sev))
        side = side.when(hit).then(pl.lit(s))
        threshold = threshold.when(hit).then(limit)
    return (
        severity.otherwise(pl.lit(None, pl.String)),
        side.otherwise(pl.lit(None, pl.String)),
        threshold.otherwise(pl.lit(None, pl.Float64)),
    )


def threshold_alerts(silver: pl.DataFrame, profile: Profile) -> pl.DataFrame:
    """Readings beyond warning/critical thresholds: one row per asset x sensor x hour x severity reached.

    Columns of `alert_history`; see the module docstring for the rules.
    """
    id_col, time_col = profile.id_column, profile.time_column
    relatives = sorted({s.relative_to for s in profile.sensors.values() if s.relative_to})
    _require(silver, [id_col, time_col, *profile.sensor_names, *relatives], "silver frame")
    ts = _utc(silver, time_col, "silver frame").alias("_ts")
    parts: list[pl.LazyFrame] = []
    base = silver.lazy().with_columns(ts)
    for sensor in profile.sensor_names:
        zone = _zone_exprs(profile, sensor)
        if zone is None:
            continue
        severity, side, threshold = zone
        parts.append(
            base.select(
                pl.col(id_col).cast(pl.String).alias(ASSET_ID),
                pl.lit(sensor, pl.String).alias("sensor"),
                pl.col("_ts"),
                pl.col(sensor).cast(pl.Float64).fill_nan(None).alias("_x"),
                severity.alias("severity"),
                side.alias("_side"),
                threshold.alias("threshold"),
            ).filter(pl.col("severity").is_not_null() & pl.col("threshold").is_not_null())
        )
    if not parts:
        return pl.DataFrame(schema=ALERT_SCHEMA)
    # order inside a group: high side first, then the worst reading first (largest high / smallest low)
    worst = [
        pl.col("_side") != "high",
        pl.when(pl.col("_side") == "high").then(-pl.col("_x")).otherwise(pl.col("_x")),
    ]
    out = (
        pl.concat(parts)
        .with_columns(pl.col("_ts").dt.truncate("1h").alias("hour_start"))
        .group_by(ASSET_ID, "sensor", "hour_start", "severity")
        .agg(
            pl.col("_x").sort_by(worst).first().alias("value"),
            pl.col("threshold").sort_by(worst).first().alias("threshold"),
            pl.len().cast(pl.Int32).alias("readings"),
            pl.col("_ts").min().alias("first_seen"),
        )
        .sort(ASSET_ID, "sensor", "hour_start", "severity")
        .collect()
    )
    return out.select(pl.col(name).cast(dtype) for name, dtype in ALERT_SCHEMA.items())


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def _to_value(raw: Any) -> tuple[float | None, str | None]:
    """(numeric value, JSON details) of one metric."""
    if raw is None:
        return None, None
    if isinstance(raw, bool):
        return (1.0 if raw else 0.0), json.dumps(raw)
    if isinstance(raw, numbers.Real):
        number = float(raw)
        return (number, None) if math.isfinite(number) else (None, json.dumps(str(number)))
    if isinstance(raw, datetime | date):
        return None, json.dumps(raw.isoformat())
    try:
        return None, json.dumps(raw, default=str, allow_nan=False)
    except ValueError:  # NaN inside a list: keep it readable
        return None, json.dumps(str(raw))


def quality_rows(metrics: Mapping[str, Any], *, layer: str | None = None) -> pl.DataFrame:
    """Flatten a quality report into `data_quality_metrics` rows.

    Nested dicts become dotted metric names (`quarantined.null_value`). Numbers go to `value`; booleans to
    `value` as 1.0/0.0 and to `details` as JSON true/false; anything else (strings, lists, non-finite
    numbers) goes to `details` as JSON with a null `value`. The report's `date` (required) and `layer`
    (default "silver", or the `layer` argument) are the key, not metrics.
    """
    raw_date = metrics.get("date")
    if isinstance(raw_date, datetime):
        raw_date = raw_date.date()
    try:
        day = raw_date if isinstance(raw_date, date) else date.fromisoformat(str(raw_date))
    except ValueError:
        raise PublishError(f"quality report: expected 'date' as YYYY-MM-DD, got {raw_date!r}") from None
    the_layer = layer or str(metrics.get("layer") or "silver")
    flat: dict[str, Any] = {}
    _flatten("", {k: v for k, v in metrics.items() if k not in _KEY_FIELDS}, flat)
    rows = []
    for name in sorted(flat):
        value, details = _to_value(flat[name])
        rows.append({"date": day, "layer": the_layer, "metric": name, "value": value, "details": details})
    return pl.DataFrame(rows, schema=QUALITY_SCHEMA)

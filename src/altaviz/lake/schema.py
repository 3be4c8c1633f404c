"""Table locations and explicit schemas of the medallion, rendered from a profile.

Bronze  LAKE/bronze/sensor_readings      append-only; partitioned by `date`
        id column (str), time column (UTC datetime, null when absent/unparseable), one Float64 per sensor,
        _raw_record   original text of a row the reader could not fully type (else null)
        _parse_error  null, or 'malformed_record' | 'invalid_type' | 'unparseable_timestamp'
        _parse_detail what failed (column name, parser message), else null
        _source_file  path of the source file relative to the raw root
        _source_row   0-based row (line) index inside the source file
        _ingested_at  UTC load time of the batch
        _batch_id     id of the ingest batch
        date          UTC date of the timestamp; for rows without one, the date in the source path, else the
                      ingestion date
Bronze ledger  LAKE/bronze/_files        one row per ingested source file (path, checksum, ...)
Silver  LAKE/silver/sensor_readings      partitioned by `date`: typed, validated readings + fleet metadata + is_stuck
Quarantine LAKE/quarantine/sensor_readings  partitioned by `date`: bronze columns + _reason + _reason_detail
Gold    LAKE/gold/sensor_features        partitioned by `date`: silver keys + sensors + the feature spec
Metrics LAKE/metrics/quality_<date>.json
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from altaviz.profiles.model import Profile
from altaviz.profiles.spec import feature_spec

TIME = pl.Datetime("us", "UTC")

BRONZE = "bronze/sensor_readings"
BRONZE_LEDGER = "bronze/_files"
SILVER = "silver/sensor_readings"
QUARANTINE = "quarantine/sensor_readings"
GOLD = "gold/sensor_features"
TABLES = {"bronze": BRONZE, "silver": SILVER, "quarantine": QUARANTINE, "gold": GOLD, "ledger": BRONZE_LEDGER}

LINEAGE: dict[str, pl.DataType] = {
    "_raw_record": pl.String(),
    "_parse_error": pl.String(),
    "_parse_detail": pl.String(),
    "_source_file": pl.String(),
    "_source_row": pl.Int64(),
    "_ingested_at": TIME,
    "_batch_id": pl.String(),
}

_METADATA_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "float64": pl.Float64(),
    "int64": pl.Int64(),
    "date": pl.Date(),
    "bool": pl.Boolean(),
}


def table_path(lake: Path, table: str) -> Path:
    """Path of a table by short name ('bronze', 'silver', 'quarantine', 'gold', 'ledger') or relative path."""
    return Path(lake) / TABLES.get(table, table)


def reading_schema(profile: Profile) -> dict[str, pl.DataType]:
    """The typed reading: asset id, timestamp, one Float64 per sensor."""
    out: dict[str, pl.DataType] = {profile.id_column: pl.String(), profile.time_column: TIME}
    out.update({s: pl.Float64() for s in profile.sensor_names})
    return out


def bronze_schema(profile: Profile) -> pl.Schema:
    return pl.Schema({**reading_schema(profile), **LINEAGE, "date": pl.Date()})


def quarantine_schema(profile: Profile) -> pl.Schema:
    cols = dict(bronze_schema(profile))
    date = cols.pop("date")
    return pl.Schema({**cols, "_reason": pl.String(), "_reason_detail": pl.String(), "date": date})


def metadata_schema(profile: Profile) -> pl.Schema:
    return pl.Schema({name: _METADATA_TYPES[t] for name, t in profile.asset.metadata.items()})


def silver_schema(profile: Profile) -> pl.Schema:
    cols = dict(reading_schema(profile))
    for name, dtype in metadata_schema(profile).items():
        cols.setdefault(name, dtype)
    cols.update(
        {
            "is_stuck": pl.Boolean(),
            "_source_file": pl.String(),
            "_batch_id": pl.String(),
            "_ingested_at": TIME,
            "date": pl.Date(),
        }
    )
    return pl.Schema(cols)


def gold_schema(profile: Profile) -> pl.Schema:
    spec = feature_spec(profile)
    cols: dict[str, pl.DataType] = {profile.id_column: pl.String(), profile.time_column: TIME}
    cols.update({s: pl.Float64() for s in profile.sensor_names})  # the readings as received
    # Features are computed in Float64 and stored as Float32 (7 significant digits, far finer than any sensor):
    # half the bytes to write and read, which on 4.5 M readings x 70 features is most of the gold write.
    for f in spec.rolling:
        cols[f.name] = pl.Float32()
    for r in spec.rates:
        cols[r.name] = pl.Float32()
    for d in spec.derived:
        cols[d.name] = pl.Float32()
    for s in spec.statuses:
        cols[s.name] = pl.String()
    cols["health_status"] = pl.String()
    cols["hour_of_day"] = pl.Int8()
    cols["day_of_week"] = pl.Int8()
    cols["is_weekend"] = pl.Boolean()
    cols["is_stuck"] = pl.Boolean()
    cols["date"] = pl.Date()
    return pl.Schema(cols)

"""Fleet metadata (the asset reference table): read from the raw drop, validated, kept in the lake."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from deltalake import DeltaTable, write_deltalake

from altaviz.lake.errors import LakeError
from altaviz.lake.schema import metadata_schema
from altaviz.profiles.model import Profile


def reference_table(lake: Path, profile: Profile) -> Path:
    return Path(lake) / "reference" / Path(profile.asset.metadata_file).stem


def find_metadata_file(raw: Path, profile: Profile) -> Path | None:
    """`reference/<metadata_file>` beside or above the raw files (DIR or DIR/raw may be given)."""
    for base in (Path(raw), Path(raw).parent):
        candidate = base / "reference" / profile.asset.metadata_file
        if candidate.is_file():
            return candidate
    return None


def read_metadata_csv(path: Path, profile: Profile) -> pl.DataFrame:
    schema = metadata_schema(profile)
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise LakeError(f"fleet metadata {path}: cannot be read as CSV ({exc})") from exc
    missing = [c for c in schema.names() if c not in frame.columns]
    if missing:
        raise LakeError(f"fleet metadata {path}: missing columns {missing} (expected {schema.names()})")

    def typed(name: str, dtype: pl.DataType) -> pl.Expr:
        col = pl.col(name).str.strip_chars()
        if dtype == pl.Date():
            return col.str.to_date("%Y-%m-%d", strict=True)
        if dtype == pl.Boolean():
            return col.str.to_lowercase().replace_strict({"true": True, "false": False, "1": True, "0": False})
        return col.cast(dtype, strict=True)

    try:
        frame = frame.select(typed(n, t) for n, t in schema.items())
    except pl.exceptions.PolarsError as exc:
        raise LakeError(f"fleet metadata {path}: a value does not match the profile's type ({exc})") from exc
    ids = frame.get_column(profile.id_column)
    if ids.null_count() or ids.is_duplicated().any():
        raise LakeError(f"fleet metadata {path}: column {profile.id_column} must be unique and non-empty")
    return frame.sort(profile.id_column)


def load_metadata(raw: Path | None, lake: Path, profile: Profile) -> pl.DataFrame:
    """Metadata from the raw drop if present (and stored into the lake), else the copy in the lake."""
    table = reference_table(lake, profile)
    source = find_metadata_file(raw, profile) if raw is not None else None
    if source is not None:
        frame = read_metadata_csv(source, profile)
        stored = pl.read_delta(str(table)) if DeltaTable.is_deltatable(str(table)) else None
        if stored is None or not stored.equals(frame):
            table.mkdir(parents=True, exist_ok=True)
            write_deltalake(str(table), frame.to_arrow(), mode="overwrite", schema_mode="overwrite")
        return frame
    if DeltaTable.is_deltatable(str(table)):
        return pl.read_delta(str(table))
    where = f"{raw}/reference/ or {Path(raw).parent}/reference/" if raw is not None else "the raw directory"
    raise LakeError(
        f"fleet metadata {profile.asset.metadata_file}: not found in {where} and not yet in the lake ({table})"
    )

"""Frame comparison of the conformance suite: exact for keys, strings, integers, booleans, dates, timestamps;
floats equal within a relative tolerance (NaN equals NaN, null equals null, ±inf exact). Float32 columns (gold
features, computed in Float64 and stored as Float32) may differ by one unit in the last place: two Float64 values
1e-9 apart can round to neighbouring Float32 values."""

from __future__ import annotations

import polars as pl

REL_TOL = 1e-9
REL_TOL_F32 = 2.0**-23  # one unit in the last place of a Float32, relative


def float_mismatches(left: pl.Series, right: pl.Series, rel_tol: float = REL_TOL) -> pl.DataFrame:
    """Rows where two float columns differ beyond `rel_tol` relative (of the larger magnitude)."""
    f = pl.DataFrame({"left": left, "right": right})
    a, b = pl.col("left"), pl.col("right")
    same = (
        (a.is_null() & b.is_null())
        | (a.is_nan() & b.is_nan())
        | (a == b)
        | ((a - b).abs() <= rel_tol * pl.max_horizontal(a.abs(), b.abs()))
    ).fill_null(False)
    return f.with_row_index("row").filter(~same)


def assert_frames_conform(
    left: pl.DataFrame,
    right: pl.DataFrame,
    keys: list[str],
    what: str,
    rel_tol: dict[str, float] | None = None,
) -> None:
    """Same columns and dtypes, same key set, and every column equal row by row (floats within tolerance)."""
    assert left.schema == right.schema, f"{what}: schemas differ\n{left.schema}\n{right.schema}"
    assert left.height == right.height, f"{what}: {left.height} rows vs {right.height}"
    assert not left.select(keys).is_duplicated().any(), f"{what}: keys {keys} are not unique"
    left, right = left.sort(keys, nulls_last=True), right.sort(keys, nulls_last=True)
    assert left.select(keys).equals(right.select(keys)), f"{what}: different key sets"
    problems = []
    for name, dtype in left.schema.items():
        if dtype in (pl.Float64, pl.Float32):
            default = REL_TOL if dtype == pl.Float64 else REL_TOL_F32
            a, b = left.get_column(name).cast(pl.Float64), right.get_column(name).cast(pl.Float64)
            bad = float_mismatches(a, b, (rel_tol or {}).get(name, default))
            if bad.height:
                problems.append(f"{name}: {bad.height} rows differ, e.g. {bad.head(3).rows()}")
        elif not left.get_column(name).equals(right.get_column(name)):
            diff = left.select(*keys, name).with_columns(right.get_column(name).alias("other"))
            diff = diff.filter(pl.col(name).ne_missing(pl.col("other")))
            problems.append(f"{name}: {diff.height} rows differ, e.g. {diff.head(3).rows()}")
    assert not problems, f"{what}: " + "; ".join(problems)

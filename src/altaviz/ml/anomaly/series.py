"""Bring-your-own time series: load any CSV, build time-based features, score it with the Isolation Forest.

No profile needed. Every numeric column (or the ones named) is a signal; rows are ordered by the parsed time
column. Missing values are carried forward (then backward) for the features, so a gap never looks like a jump
to zero. Sampling may be irregular: every window is a time span, `(t - w, t]`, never a row count; its length
defaults to a multiple of the median sampling interval (short = 12 x, long = 288 x: 1 h and 1 day for 5-minute
data), or is given explicitly.

Features per signal: the level and the drift, i.e. the short-window mean minus the long-window mean (a drop
or a rise against the recent normal). Short-term roughness and rate features were tried and left out: on a slowly
varying process signal they react to sensor chatter and multiply one-reading false alarms (docs/anomaly.md).
The detector is fitted on the file itself and scores every row: a fully unsupervised pass, exactly what a user
with an unlabelled file can do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import polars as pl

from altaviz.errors import AltavizError

TIME = "__time"
SHORT_MULTIPLE = 12
LONG_MULTIPLE = 288


class DetectInputError(AltavizError):
    """A CSV that cannot be scored: empty, no numeric columns, unparsable times, unknown columns."""


@dataclass(frozen=True)
class Series:
    frame: pl.DataFrame  # TIME (Datetime) + the signal columns (Float64), sorted by time
    signals: list[str]
    time_column: str


def _parse_times(raw: pl.Series, name: str) -> pl.Series:
    if raw.dtype.is_temporal():
        return raw.cast(pl.Datetime("us", raw.dtype.time_zone if isinstance(raw.dtype, pl.Datetime) else None))
    if raw.dtype.is_numeric():
        raise DetectInputError(f"time column {name!r}: expected date-times (e.g. 2024-01-31 12:00), got numbers")
    text = raw.cast(pl.String).str.strip_chars()
    parsed = None
    for fmt in (None, "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f%z", "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M"):
        try:
            attempt = text.str.to_datetime(format=fmt, strict=False, time_unit="us")
        except pl.exceptions.PolarsError:
            continue
        if parsed is None or attempt.null_count() < parsed.null_count():
            parsed = attempt
        if parsed.null_count() == text.null_count():
            break
    bad = text.is_not_null() & (parsed.is_null() if parsed is not None else True)
    if parsed is None or bad.any():
        first = int(bad.arg_true()[0])
        raise DetectInputError(
            f"time column {name!r}: expected parseable date-times, got {text[first]!r} on data row {first + 1}"
            f" ({int(bad.sum())} unparseable)"
        )
    return parsed


def load_series(path: Path, time_column: str, columns: list[str] | None = None, sep: str = ",") -> Series:
    """Read and validate a CSV time series; raises DetectInputError with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise DetectInputError(f"input {path}: expected a CSV file, got nothing there")
    if path.stat().st_size == 0:
        raise DetectInputError(f"input {path}: expected a header and data rows, got an empty file")
    try:
        frame = pl.read_csv(path, separator=sep, infer_schema_length=10_000, null_values=["", "NA", "NaN", "null"])
    except pl.exceptions.NoDataError:
        raise DetectInputError(f"input {path}: expected a header and data rows, got an empty file") from None
    except pl.exceptions.PolarsError as exc:
        raise DetectInputError(
            f"input {path}: expected a CSV with separator {sep!r}, got unreadable text ({exc})"
        ) from None
    if time_column not in frame.columns:
        raise DetectInputError(f"time column {time_column!r}: not in {path.name} (columns: {', '.join(frame.columns)})")
    if frame.height == 0:
        raise DetectInputError(f"input {path}: expected data rows, got only a header")
    if columns:
        unknown = [c for c in columns if c not in frame.columns]
        if unknown:
            raise DetectInputError(
                f"--columns {','.join(unknown)}: not in {path.name} (columns: {', '.join(frame.columns)})"
            )
        non_numeric = [c for c in columns if not frame.schema[c].is_numeric()]
        if non_numeric:
            raise DetectInputError(
                f"--columns {','.join(non_numeric)}: expected numeric columns, got "
                + ", ".join(f"{c} ({frame.schema[c]})" for c in non_numeric)
            )
        signals = list(columns)
    else:
        signals = [c for c, t in frame.schema.items() if c != time_column and t.is_numeric()]
        if not signals:
            raise DetectInputError(
                f"input {path}: expected at least one numeric column besides {time_column!r}, got "
                + ", ".join(f"{c} ({t})" for c, t in frame.schema.items() if c != time_column)
            )
    times = _parse_times(frame.get_column(time_column), time_column)
    out = pl.DataFrame({TIME: times}).with_columns(frame.select(pl.col(c).cast(pl.Float64) for c in signals))
    out = out.filter(pl.col(TIME).is_not_null()).with_row_index("__row").sort(TIME, "__row").drop("__row")
    if out.height < 10:
        raise DetectInputError(f"input {path}: expected at least 10 timed rows to learn from, got {out.height}")
    all_null = [c for c in signals if out.get_column(c).null_count() == out.height]
    if all_null:
        raise DetectInputError(f"columns {', '.join(all_null)}: expected numbers, got only missing values")
    return Series(out, signals, time_column)


def median_interval(frame: pl.DataFrame) -> timedelta:
    steps = frame.get_column(TIME).diff().drop_nulls()
    positive = steps.filter(steps > timedelta(0))
    if positive.is_empty():
        return timedelta(minutes=1)
    return positive.median()  # type: ignore[return-value]


def windows_for(frame: pl.DataFrame) -> tuple[timedelta, timedelta]:
    """Default (short, long) windows: multiples of the median sampling interval."""
    step = median_interval(frame)
    return step * SHORT_MULTIPLE, step * LONG_MULTIPLE


def series_features(
    series: Series, short: timedelta | None = None, long: timedelta | None = None
) -> tuple[pl.DataFrame, list[str]]:
    """Time-based features per signal; returns (frame with the feature columns, their names)."""
    default_short, default_long = windows_for(series.frame)
    short, long = short or default_short, long or default_long
    filled = series.frame.with_columns(pl.col(c).forward_fill().backward_fill() for c in series.signals)
    exprs, names = [], []
    for c in series.signals:
        short_mean = pl.col(c).rolling_mean_by(TIME, window_size=short)
        long_mean = pl.col(c).rolling_mean_by(TIME, window_size=long)
        feats = {
            f"{c}__level": pl.col(c),
            f"{c}__drift": short_mean - long_mean,
        }
        exprs += [e.alias(n) for n, e in feats.items()]
        names += list(feats)
    return filled.with_columns(exprs), names


def score_series(series: Series, *, contamination: float = 0.01, random_state: int = 0) -> pl.DataFrame:
    """Fit the detector on the series itself and score every row: `timestamp, score, is_anomaly`."""
    from altaviz.ml.anomaly.detector import AnomalyDetector

    features, names = series_features(series)
    detector = AnomalyDetector(names, contamination=contamination, random_state=random_state, asset_column=None)
    scored = detector.fit(features).score(features)
    return scored.select(pl.col(TIME).alias("timestamp"), pl.col("anomaly_score").alias("score"), pl.col("is_anomaly"))

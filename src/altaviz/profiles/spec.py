"""Engine-neutral specs rendered from a profile: the silver validation rules and the gold feature list.

Engines (Polars, Spark) iterate over these objects and translate each kind into their own expressions; no engine
names a sensor or a number by hand. Semantics that every engine must implement identically:

Validation (silver), applied in this order; a row gets the reason of the first rule it fails:
  1. bronze `_parse_error` set: the reader could not type the row; the reason is that code
     (`malformed_record`, `invalid_type` or `unparseable_timestamp`), the detail is bronze `_parse_detail`
  2. `missing_asset_id`     asset id null or empty
  3. `unparseable_timestamp` timestamp null or not parseable
  4. `unknown_asset`        asset id not in the fleet metadata
  5. `future_timestamp`     timestamp > ingestion time + quality.future_tolerance
  6. duplicates on (asset id, timestamp): the first row by (_ingested_at, _source_file, _source_row) is kept,
     the others are counted as `duplicates_dropped` (not quarantined)
  7. `null_value`           a required sensor is null           (detail: sensor name)
  8. `non_finite`           a sensor is NaN or +-inf             (detail: sensor name)
  9. `out_of_physical_range` value outside the sensor's physical range (detail: sensor name)
 10. `outlier`              |x - mean| > outlier_sigma * std, mean/std (ddof=1) per (asset, date) over rows that
                            passed 1-9 (detail: sensor name)
Flag (not a rejection): `is_stuck` when some sensor's min == max over the trailing stuck_window (t - w, t] of the
same asset and date, with at least stuck_min_readings readings in that window.

Gold features, per asset, ordered by time; window (t - w, t] is time-based (closed right):
  {sensor}_{window}_{stat}   mean / std (sample, ddof=1; null below 2 readings) / max / min over the window
  {sensor}_{rate}_delta      (x_t - x_ref) / hours(t - t_ref), x_ref the latest reading at or before t - rate
                             and no older than t - 2*rate; null when there is none
  {derived}                  left op right, computed per reading
  {sensor}_status            'critical' / 'warning' / 'normal' from the thresholds (x >= high or x <= low;
                             `relative_to` multiplies the thresholds by that metadata column)
  health_status              worst of the sensor statuses
  hour_of_day, day_of_week (ISO, Monday=1), is_weekend   from the UTC timestamp
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from altaviz.profiles.model import Profile, parse_duration

REASONS = (
    "malformed_record",
    "invalid_type",
    "missing_asset_id",
    "unparseable_timestamp",
    "unknown_asset",
    "future_timestamp",
    "null_value",
    "non_finite",
    "out_of_physical_range",
    "outlier",
)
STATUS_LEVELS = ("normal", "warning", "critical")


@dataclass(frozen=True)
class RangeRule:
    sensor: str
    low: float
    high: float


@dataclass(frozen=True)
class RollingFeature:
    name: str
    sensor: str
    window: str
    seconds: int
    stat: str


@dataclass(frozen=True)
class RateFeature:
    name: str
    sensor: str
    window: str
    seconds: int


@dataclass(frozen=True)
class DerivedFeature:
    name: str
    op: str
    left: str
    right: str


@dataclass(frozen=True)
class StatusRule:
    name: str
    sensor: str
    # (severity, side, value) with critical boundaries first
    thresholds: tuple[tuple[str, str, float], ...]
    relative_to: str | None


@dataclass(frozen=True)
class FeatureSpec:
    rolling: tuple[RollingFeature, ...]
    rates: tuple[RateFeature, ...]
    derived: tuple[DerivedFeature, ...]
    statuses: tuple[StatusRule, ...]
    time_features: tuple[str, ...] = ("hour_of_day", "day_of_week", "is_weekend")

    @property
    def lookback(self) -> timedelta:
        """How much history before a day a day's features need, so day-by-day equals one pass."""
        longest = max([f.seconds for f in self.rolling] + [2 * r.seconds for r in self.rates] + [0])
        return timedelta(seconds=longest)

    @property
    def columns(self) -> list[str]:
        return (
            [f.name for f in self.rolling]
            + [r.name for r in self.rates]
            + [d.name for d in self.derived]
            + [s.name for s in self.statuses]
            + ["health_status", *self.time_features]
        )


def _seconds(window: str) -> int:
    return int(parse_duration(window).total_seconds())


def feature_spec(profile: Profile) -> FeatureSpec:
    """Render the gold feature list from a profile: sensors x windows x stats, rates, derived, statuses."""
    fs = profile.features
    rolling = tuple(
        RollingFeature(f"{s}_{w}_{stat}", s, w, _seconds(w), stat)
        for s in profile.sensor_names
        for w in fs.windows
        for stat in fs.stats
    )
    rates = ()
    if fs.rate_of_change:
        rates = tuple(
            RateFeature(f"{s}_{fs.rate_of_change}_delta", s, fs.rate_of_change, _seconds(fs.rate_of_change))
            for s in profile.sensor_names
        )
    derived = tuple(DerivedFeature(n, d.op, d.left, d.right) for n, d in fs.derived.items())
    statuses = tuple(
        StatusRule(f"{n}_status", n, tuple(s.thresholds()), s.relative_to)
        for n, s in profile.sensors.items()
        if s.thresholds()
    )
    return FeatureSpec(rolling, rates, derived, statuses)


def range_rules(profile: Profile) -> tuple[RangeRule, ...]:
    return tuple(RangeRule(n, *s.physical_range) for n, s in profile.sensors.items())


def stuck_window_seconds(profile: Profile) -> int:
    return _seconds(profile.quality.stuck_window)


def future_tolerance_seconds(profile: Profile) -> int:
    return _seconds(profile.quality.future_tolerance)

"""The asset profile: sensors, units, physical ranges, thresholds, feature and quality settings.

A profile is loaded from YAML (see `loader.py`) and validated here; everything downstream (simulator, silver rules,
gold features, alerts) reads it instead of hard-coding column names or numbers.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

MetadataType = Literal["string", "float64", "int64", "date", "bool"]


def parse_duration(text: str) -> timedelta:
    """Parse '10m', '1h', '24h', '7d', '30s' into a timedelta; raise ValueError otherwise."""
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"expected a duration like '30s', '10m', '1h' or '7d', got {text!r}")
    return timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2)])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Threshold(_Strict):
    """A zone boundary: a reading >= high or <= low is in the zone."""

    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _one_side(self) -> Threshold:
        if self.low is None and self.high is None:
            raise ValueError("a threshold needs 'low', 'high' or both")
        return self


class Sensor(_Strict):
    description: str = ""
    unit: str
    dtype: Literal["float64"] = "float64"
    required: bool = True
    physical_range: tuple[float, float]
    normal_band: tuple[float, float]
    warning: Threshold | None = None
    critical: Threshold | None = None
    relative_to: str | None = None

    @field_validator("physical_range", "normal_band")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not v[0] < v[1]:
            raise ValueError(f"expected [low, high] with low < high, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Sensor:
        w, c = self.warning, self.critical
        if w and c:
            if w.high is not None and c.high is not None and not w.high < c.high:
                raise ValueError(f"warning.high ({w.high}) must be below critical.high ({c.high})")
            if w.low is not None and c.low is not None and not w.low > c.low:
                raise ValueError(f"warning.low ({w.low}) must be above critical.low ({c.low})")
        if self.relative_to is None:
            lo, hi = self.physical_range
            for zone, t in (("warning", w), ("critical", c)):
                for side in ("low", "high"):
                    value = getattr(t, side) if t else None
                    if value is not None and not lo <= value <= hi:
                        raise ValueError(f"{zone}.{side} ({value}) lies outside physical_range [{lo}, {hi}]")
        return self

    def thresholds(self) -> list[tuple[str, str, float]]:
        """(severity, side, value) for each configured boundary, critical first."""
        out: list[tuple[str, str, float]] = []
        for severity, t in (("critical", self.critical), ("warning", self.warning)):
            if t is None:
                continue
            for side in ("high", "low"):
                value = getattr(t, side)
                if value is not None:
                    out.append((severity, side, value))
        return out


class AssetSpec(_Strict):
    id_column: str
    id_prefix: str
    metadata_file: str
    metadata: dict[str, MetadataType]

    @model_validator(mode="after")
    def _id_in_metadata(self) -> AssetSpec:
        if self.id_column not in self.metadata:
            raise ValueError(f"id_column {self.id_column!r} must be one of the metadata columns")
        return self


class DerivedSpec(_Strict):
    op: Literal["sub", "add", "mul", "div"]
    left: str
    right: str
    unit: str = ""


class FeatureSettings(_Strict):
    windows: list[str] = Field(default_factory=lambda: ["1h", "4h", "24h"])
    stats: list[Literal["mean", "std", "max", "min"]] = Field(default_factory=lambda: ["mean", "std", "max"])
    rate_of_change: str | None = "1h"
    derived: dict[str, DerivedSpec] = Field(default_factory=dict)

    @field_validator("windows")
    @classmethod
    def _windows(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("expected at least one window")
        for w in v:
            parse_duration(w)
        if len(set(v)) != len(v):
            raise ValueError(f"windows must be distinct, got {v}")
        return v

    @field_validator("rate_of_change")
    @classmethod
    def _rate(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v


class QualitySettings(_Strict):
    outlier_sigma: float = 4.0
    stuck_window: str = "1h"
    stuck_min_readings: int = 4
    future_tolerance: str = "5m"
    missing_rate_flag: float = 0.05

    @field_validator("stuck_window", "future_tolerance")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v)
        return v

    @field_validator("outlier_sigma")
    @classmethod
    def _sigma(cls, v: float) -> float:
        if v <= 0:
            raise ValueError(f"expected a positive number of standard deviations, got {v}")
        return v


class Profile(_Strict):
    name: str
    description: str = ""
    asset: AssetSpec
    time_column: str = "timestamp"
    sensors: dict[str, Sensor]
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)

    @model_validator(mode="after")
    def _cross_checks(self) -> Profile:
        if not self.sensors:
            raise ValueError("sensors: expected at least one sensor")
        for name in [*self.sensors, *self.features.derived, self.asset.id_column, self.time_column]:
            if not _NAME.match(name):
                raise ValueError(f"column name {name!r} must be snake_case (letters, digits, underscores)")
        for name, sensor in self.sensors.items():
            if sensor.relative_to is not None and sensor.relative_to not in self.asset.metadata:
                raise ValueError(
                    f"sensors.{name}.relative_to: {sensor.relative_to!r} is not a metadata column "
                    f"(expected one of {sorted(self.asset.metadata)})"
                )
        for name, d in self.features.derived.items():
            for side in ("left", "right"):
                ref = getattr(d, side)
                if ref not in self.sensors:
                    raise ValueError(
                        f"features.derived.{name}.{side}: {ref!r} is not a sensor "
                        f"(expected one of {sorted(self.sensors)})"
                    )
            if name in self.sensors:
                raise ValueError(f"features.derived.{name}: name clashes with a sensor")
        return self

    @property
    def id_column(self) -> str:
        return self.asset.id_column

    @property
    def sensor_names(self) -> list[str]:
        return list(self.sensors)

    @property
    def required_sensors(self) -> list[str]:
        return [n for n, s in self.sensors.items() if s.required]

"""Which gold columns the fleet detector uses, and the ML-vs-rule comparison a user reads.

Features are rendered from the profile's feature spec (no sensor named by hand): every raw sensor, every
rate-of-change feature, every derived feature, and the standard deviation over the shortest rolling window
(short-term roughness: chatter, a loosening part). Longer windows mostly repeat the raw level.
"""

from __future__ import annotations

import polars as pl

from altaviz.profiles.model import Profile
from altaviz.profiles.spec import feature_spec

RULE_NORMAL = "normal"


def gold_feature_columns(profile: Profile) -> list[str]:
    spec = feature_spec(profile)
    shortest = min((f.seconds for f in spec.rolling), default=None)
    rough = [f.name for f in spec.rolling if f.seconds == shortest and f.stat == "std"]
    return [
        *profile.sensor_names,
        *[r.name for r in spec.rates],
        *[d.name for d in spec.derived],
        *rough,
    ]


def with_rule_flag(frame: pl.DataFrame, status_column: str = "health_status") -> pl.DataFrame:
    """Add `rule_based_anomaly`: the profile thresholds put the reading outside 'normal'."""
    return frame.with_columns((pl.col(status_column).fill_null(RULE_NORMAL) != RULE_NORMAL).alias("rule_based_anomaly"))


def rule_agreement(scored: pl.DataFrame) -> dict[str, int | float]:
    """Confusion of the ML flag against the rule-based flag: counts and the agreement rate."""
    ml = scored.get_column("is_anomaly").fill_null(False)
    rule = scored.get_column("rule_based_anomaly").fill_null(False)
    both = int((ml & rule).sum())
    ml_only = int((ml & ~rule).sum())
    rule_only = int((~ml & rule).sum())
    neither = int((~ml & ~rule).sum())
    total = both + ml_only + rule_only + neither
    return {
        "readings": total,
        "both": both,
        "ml_only": ml_only,
        "rule_only": rule_only,
        "neither": neither,
        "agreement": round((both + neither) / total, 4) if total else 1.0,
    }

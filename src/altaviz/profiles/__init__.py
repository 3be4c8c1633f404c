"""Asset profiles: the declarative single source of truth (sensors, ranges, thresholds, feature spec)."""

from altaviz.profiles.loader import ProfileError, builtin_profiles, load_profile, parse_profile
from altaviz.profiles.model import Profile, Sensor, parse_duration
from altaviz.profiles.spec import FeatureSpec, feature_spec, range_rules

__all__ = [
    "FeatureSpec",
    "Profile",
    "ProfileError",
    "Sensor",
    "builtin_profiles",
    "feature_spec",
    "load_profile",
    "parse_duration",
    "parse_profile",
    "range_rules",
]

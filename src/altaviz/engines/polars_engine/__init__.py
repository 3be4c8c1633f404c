"""The embedded engine: Polars expressions rendered from the profile spec."""

from altaviz.engines.polars_engine.gold import build_features
from altaviz.engines.polars_engine.silver import SilverResult, validate

__all__ = ["SilverResult", "build_features", "validate"]

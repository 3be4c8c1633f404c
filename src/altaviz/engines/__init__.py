"""Engines render the declarative spec (profiles) into executable transforms.

An engine offers two pure stage functions over frames; the lake adapters do the I/O around them:
  validate(bronze, metadata, profile) -> SilverResult(silver, quarantine, duplicates_dropped)
  build_features(silver_with_lookback, profile, dates) -> gold frame
Polars is the embedded default; a Spark engine renders the same spec for clusters.
"""

from __future__ import annotations

from types import ModuleType

from altaviz.errors import AltavizError

ENGINES = ("polars", "spark")


class EngineError(AltavizError):
    """An engine is unknown or unavailable."""


def get_engine(name: str = "polars") -> ModuleType:
    if name == "polars":
        from altaviz.engines import polars_engine

        return polars_engine
    if name == "spark":
        try:
            from altaviz.engines import spark_engine
        except ImportError as exc:
            raise EngineError(f"engine 'spark': PySpark is not installed ({exc})") from exc
        return spark_engine
    raise EngineError(f"engine {name!r}: unknown (expected one of {list(ENGINES)})")

"""The Spark engine: the profile spec rendered with the PySpark DataFrame API (Spark Connect, Sail or JVM).

Same stage contract as the Polars engine, over Spark DataFrames:
  validate(bronze, metadata, profile) -> SparkSilverResult (silver, quarantine, duplicates_dropped)
  build_features(silver_with_lookback, profile, dates) -> gold DataFrame
"""

from altaviz.engines.spark_engine.gold import build_features
from altaviz.engines.spark_engine.session import get_session, stop_sail
from altaviz.engines.spark_engine.silver import SparkSilverResult, validate

__all__ = ["SparkSilverResult", "build_features", "get_session", "stop_sail", "validate"]

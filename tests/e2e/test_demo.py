"""`altaviz demo` end to end on embedded defaults: simulate -> ETL -> PostgreSQL -> train both models -> score."""

from __future__ import annotations

import psycopg
from rich.console import Console

from altaviz.demo import run_demo
from altaviz.settings import Settings


def test_demo_fills_lake_database_and_predictions(pg_data_root):
    settings = Settings(data_root=pg_data_root, database_url=None)
    result = run_demo(settings, assets=10, days=7, seed=7, console=Console(quiet=True))
    report = result["report"]
    assert report.bronze_rows == report.silver_rows + sum(report.quarantined.values()) + report.duplicates_dropped
    assert (settings.lake / "gold" / "sensor_features" / "_delta_log").is_dir()
    with psycopg.connect(result["database_url"]) as conn:
        count = lambda table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: E731
        assert count("compressors") == 10
        assert count("sensor_readings_agg") > 0
        assert count("rul_predictions") == 10  # one per asset
        scored = int(result["models"]["scored: ml_anomaly_predictions"].replace(",", ""))
        assert count("ml_anomaly_predictions") == scored > 0
        versions = {r[0] for r in conn.execute("SELECT DISTINCT model_version FROM rul_predictions")}
    assert versions == {result["models"]["model: rul (version)"]}

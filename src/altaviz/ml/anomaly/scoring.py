"""Fleet anomaly model: train from gold and register; score the latest gold day(s) into PostgreSQL.

`train_fleet` fits an `AnomalyDetector` on the whole gold table (features from the profile's feature spec),
exports it to ONNX, checks ONNX Runtime parity on the training rows and registers it as `altaviz-anomaly`
(champion) with its params, metrics (flag rate, agreement with the rule-based status) and the gold Delta version.

`score_fleet` loads the champion ONNX model, scores each asset's readings of the last day before its latest gold
reading (at or before `as_of`) and upserts them into `ml_anomaly_predictions` (COPY into a temporary table, then
INSERT ... ON CONFLICT DO UPDATE on (compressor_id, timestamp)): scoring twice gives the same rows.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from altaviz.errors import AltavizError
from altaviz.serve.db.migrate import ML_ANOMALY_PREDICTION_COLUMNS

FAMILY = "anomaly"
SERVING_ID = "compressor_id"
SCORE_SPAN = timedelta(days=1)
COPY_TYPES = ML_ANOMALY_PREDICTION_COLUMNS


class AnomalyDataError(AltavizError):
    """The gold table has nothing to train on or to score."""


def _gold(lake: Path, columns: list[str] | None = None) -> tuple[pl.DataFrame, int | None]:
    from altaviz.lake.tables import read_table, table_version

    version = table_version(lake, "gold")
    frame = read_table(lake, "gold", version=version, columns=columns)
    return frame, version


def train_fleet(
    settings,
    *,
    lake: Path | None = None,
    fast: bool = False,
    contamination: float = 0.01,
    profile: str = "compressor",
) -> str:
    """Train on gold, export ONNX, register as the anomaly champion; returns the model version."""
    from altaviz.ml.anomaly.detector import AnomalyDetector, OnnxAnomalyScorer
    from altaviz.ml.anomaly.features import gold_feature_columns, rule_agreement, with_rule_flag
    from altaviz.ml.registry import register_model
    from altaviz.profiles import load_profile

    p = load_profile(profile)
    lake = Path(lake or settings.lake)
    features = gold_feature_columns(p)
    gold, gold_version = _gold(lake)
    if gold.height < 10:
        raise AnomalyDataError(f"gold table in {lake}: expected at least 10 readings to train on, got {gold.height}")
    detector = AnomalyDetector(
        features, contamination=contamination, n_estimators=50 if fast else 200, asset_column=p.id_column
    ).fit(gold)
    scored = with_rule_flag(detector.score(gold))
    agreement = rule_agreement(scored)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = detector.to_onnx(Path(tmp) / "anomaly.onnx")
        onnx_scored = OnnxAnomalyScorer(onnx_path).score(gold)
        parity = float((onnx_scored.get_column("anomaly_score") - scored.get_column("anomaly_score")).abs().max())
        labels_equal = bool(onnx_scored.get_column("is_anomaly").equals(scored.get_column("is_anomaly")))
        metrics = {
            "train_rows": gold.height,
            "train_assets": gold.get_column(p.id_column).n_unique(),
            "flag_rate": float(scored.get_column("is_anomaly").mean()),
            "rule_rate": float(scored.get_column("rule_based_anomaly").mean()),
            "onnx_max_abs_diff": parity,
            "onnx_labels_equal": float(labels_equal),
            **{f"rule_{k}": float(v) for k, v in agreement.items()},
        }
        return register_model(
            settings,
            FAMILY,
            onnx_path,
            params={**detector.params(), "profile": p.name, "fast": fast},
            metrics=metrics,
            features=features,
            gold_version=gold_version,
        )


def latest_readings(gold: pl.DataFrame, id_col: str, time_col: str, as_of: datetime | None) -> pl.DataFrame:
    """Each asset's readings in (latest - 1 day, latest], latest = its last reading at or before `as_of`."""
    if as_of is not None:
        as_of = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
        gold = gold.filter(pl.col(time_col) <= as_of)
    return gold.filter(pl.col(time_col) > pl.col(time_col).max().over(id_col) - SCORE_SPAN)


def prediction_rows(scored: pl.DataFrame, sensors: list[str], id_col: str, time_col: str, version: str) -> pl.DataFrame:
    """Scored gold rows in the shape of `ml_anomaly_predictions` (without scored_at)."""
    status = pl.col("health_status").fill_null("normal")
    return scored.select(
        pl.col(id_col).cast(pl.String).alias(SERVING_ID),
        pl.col(time_col).alias("timestamp"),
        pl.struct(sensors).struct.json_encode().alias("sensor_values"),
        pl.col("is_anomaly"),
        pl.col("anomaly_score"),
        (status != "normal").alias("rule_based_anomaly"),
        pl.col("health_status").alias("rule_status"),
        pl.lit(version).alias("model_version"),
    )


def upsert_predictions(database_url: str, rows: pl.DataFrame) -> int:
    """COPY rows into a temporary table and upsert them into ml_anomaly_predictions; returns the row count."""
    import psycopg

    from altaviz.serve.db.migrate import libpq_url
    from altaviz.serve.db.pgcopy import copy_chunks

    rows = rows.select(list(COPY_TYPES))
    cols = ", ".join(COPY_TYPES)
    select = ", ".join("sensor_values::jsonb" if c == "sensor_values" else c for c in COPY_TYPES)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in list(COPY_TYPES)[2:])
    stage = ", ".join(f"{c} {t}" for c, t in COPY_TYPES.items())  # PostgreSQL accepts these type names
    with psycopg.connect(libpq_url(database_url)) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TEMP TABLE anomaly_stage ({stage}) ON COMMIT DROP")
        with cur.copy(f"COPY anomaly_stage ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
            for chunk in copy_chunks(rows, list(COPY_TYPES.values()), "ml_anomaly_predictions"):
                copy.write(chunk)
        cur.execute(
            f"INSERT INTO ml_anomaly_predictions ({cols}, scored_at) "
            f"SELECT DISTINCT ON (compressor_id, timestamp) {select}, now() FROM anomaly_stage "
            f"ORDER BY compressor_id, timestamp "
            f"ON CONFLICT (compressor_id, timestamp) DO UPDATE SET {updates}, scored_at = EXCLUDED.scored_at"
        )
        conn.commit()
    return rows.height


def score_fleet(
    settings,
    *,
    database_url: str,
    lake: Path | None = None,
    as_of: datetime | None = None,
    profile: str = "compressor",
) -> int:
    """Score the latest gold day of every asset with the champion ONNX model into ml_anomaly_predictions."""
    from altaviz.ml.anomaly.detector import OnnxAnomalyScorer
    from altaviz.ml.registry import load_champion
    from altaviz.profiles import load_profile

    p = load_profile(profile)
    champion = load_champion(settings, FAMILY)
    scorer = OnnxAnomalyScorer(champion.onnx_path)
    lake = Path(lake or settings.lake)
    gold, _ = _gold(lake)
    latest = latest_readings(gold, p.id_column, p.time_column, as_of)
    if latest.is_empty():
        when = f" at or before {as_of.isoformat()}" if as_of else ""
        raise AnomalyDataError(f"gold table in {lake}: expected readings{when} to score, got none")
    scored = scorer.score(latest)
    rows = prediction_rows(scored, list(p.sensor_names), p.id_column, p.time_column, champion.version)
    return upsert_predictions(database_url, rows)

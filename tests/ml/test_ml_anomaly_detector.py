"""AnomalyDetector: fit / score / refit on tiny frames, per-asset normalisation, and ONNX Runtime parity on a
small simulated lake (real simulator -> ETL -> gold Delta table)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from altaviz.ml.anomaly.detector import AnomalyDetector, DetectorError, OnnxAnomalyScorer
from altaviz.ml.anomaly.features import gold_feature_columns, rule_agreement, with_rule_flag


def _fleet(baselines: dict[str, float], n: int = 400, noise: float = 1.0, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for asset, base in baselines.items():
        parts.append(
            pl.DataFrame(
                {
                    "compressor_id": [asset] * n,
                    "a": base + noise * rng.standard_normal(n),
                    "b": 2 * base + noise * rng.standard_normal(n),
                }
            )
        )
    return pl.concat(parts)


def test_injected_outliers_score_higher_and_are_flagged() -> None:
    train = _fleet({"A": 10.0})
    det = AnomalyDetector(["a", "b"], contamination=0.02, n_estimators=50).fit(train)
    probe = pl.DataFrame({"compressor_id": ["A"] * 4, "a": [10.0, 10.5, 25.0, 10.0], "b": [20.0, 19.5, 20.0, -5.0]})
    scored = det.score(probe)
    s = scored.get_column("anomaly_score").to_list()
    assert min(s[2], s[3]) > max(s[0], s[1])
    assert scored.get_column("is_anomaly").to_list() == [False, False, True, True]
    # row order and input columns are preserved
    assert scored.select("compressor_id", "a", "b").equals(probe)


def test_readings_beyond_the_training_range_score_above_its_extremes(tmp_path: Path) -> None:
    """A forest alone scores a point far outside its training data like the most extreme training point (same
    leaf); the range term lifts it. Fitted on a clean window, as the online path often is."""
    train = _fleet({"A": 10.0}, n=300, seed=3)
    det = AnomalyDetector(["a", "b"], contamination=0.01, n_estimators=50).fit(train)
    forest, normaliser = det._fitted()
    extreme_a = float(train.get_column("a").max())
    probe = pl.DataFrame(
        {"compressor_id": ["A"] * 4, "a": [10.0, extreme_a, extreme_a + 2.0, extreme_a + 20.0], "b": [20.0] * 4}
    )
    z = normaliser.transform(probe)
    raw = -forest.score_samples(z)
    assert raw[3] == pytest.approx(raw[2], abs=0.02)  # the saturation this guards against: 20 vs 2 units out
    scored = det.score(probe)
    s = scored.get_column("anomaly_score").to_numpy()
    assert s[0] == raw[0] and s[1] == raw[1]  # inside the training range: the forest's score, untouched
    assert s[3] > s[2] > raw[2] and s[3] > 0.99
    assert scored.get_column("is_anomaly").to_list() == [False, raw[1] > -forest.offset_, True, True]
    onnx = OnnxAnomalyScorer(det.to_onnx(tmp_path / "a.onnx")).score(probe)
    assert np.max(np.abs(onnx.get_column("anomaly_score").to_numpy() - s)) <= 1e-5
    assert onnx.get_column("is_anomaly").to_list() == scored.get_column("is_anomaly").to_list()


def test_per_asset_normalisation_makes_different_baselines_comparable() -> None:
    train = _fleet({"low": 100.0, "high": 1000.0}, seed=1)
    det = AnomalyDetector(["a", "b"], contamination=0.02, n_estimators=50).fit(train)
    fresh = _fleet({"low": 100.0, "high": 1000.0}, n=300, seed=2)
    rates = det.score(fresh).group_by("compressor_id").agg(pl.col("is_anomaly").mean()).sort("compressor_id")
    # ordinary readings of both assets are flagged at a similar, small rate
    assert rates.get_column("is_anomaly").max() < 0.08
    # a reading normal for "high" is an anomaly for "low" and vice versa
    swap = pl.DataFrame({"compressor_id": ["low", "high"], "a": [1000.0, 100.0], "b": [2000.0, 200.0]})
    assert det.score(swap).get_column("is_anomaly").to_list() == [True, True]
    # a single fleet-wide scaling cannot tell: both readings look like one of the two modes
    pooled = AnomalyDetector(["a", "b"], contamination=0.02, n_estimators=50, asset_column=None).fit(train)
    assert pooled.score(swap).get_column("is_anomaly").to_list() == [False, False]


def test_missing_values_and_unknown_assets_are_scored() -> None:
    det = AnomalyDetector(["a", "b"], contamination=0.02, n_estimators=50).fit(_fleet({"A": 5.0, "B": 50.0}))
    probe = pl.DataFrame({"compressor_id": ["A", "C"], "a": [None, 27.5], "b": [10.0, 55.0]})
    scored = det.score(probe)
    assert scored.get_column("anomaly_score").is_finite().all()
    assert scored.get_column("is_anomaly").to_list()[0] is False


def test_refit_follows_the_recent_regime() -> None:
    det = AnomalyDetector(["a", "b"], contamination=0.02, n_estimators=50).fit(_fleet({"A": 0.0}))
    shifted = _fleet({"A": 40.0}, seed=3)
    before = det.score(shifted).get_column("is_anomaly").mean()
    det.refit(shifted)
    after = det.score(_fleet({"A": 40.0}, seed=4)).get_column("is_anomaly").mean()
    assert before > 0.9
    assert after < 0.08
    assert det.n_fits == 2


def test_bad_use_raises_clear_errors() -> None:
    det = AnomalyDetector(["a", "b"])
    with pytest.raises(DetectorError, match="fit"):
        det.score(_fleet({"A": 1.0}, n=5))
    with pytest.raises(DetectorError, match=r"\['b'\]"):
        det.fit(pl.DataFrame({"compressor_id": ["A", "A"], "a": [1.0, 2.0]}))
    with pytest.raises(DetectorError, match="contamination"):
        AnomalyDetector(["a"], contamination=0.9)


def test_rule_agreement_counts() -> None:
    frame = with_rule_flag(
        pl.DataFrame(
            {
                "health_status": ["normal", "warning", "critical", "normal", None],
                "is_anomaly": [False, True, False, True, False],
            }
        )
    )
    assert rule_agreement(frame) == {
        "readings": 5,
        "both": 1,
        "ml_only": 1,
        "rule_only": 1,
        "neither": 2,
        "agreement": 0.6,
    }


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from altaviz.lake.pipeline import run_etl
    from altaviz.profiles import load_profile
    from altaviz.simulate.faults import FaultRates
    from altaviz.simulate.runner import run_simulation

    root: Path = tmp_path_factory.mktemp("anomaly_lake")
    profile = load_profile("compressor")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    run_simulation(profile, root / "sim", assets=4, days=2, interval=timedelta(minutes=10), seed=7, fmt="parquet",
                   start=start, faults=FaultRates.none())  # fmt: skip
    run_etl(root / "sim" / "raw", root / "lake", profile)
    return root / "lake"


@pytest.fixture(scope="module")
def gold(lake: Path) -> pl.DataFrame:
    from altaviz.lake.tables import read_table

    return read_table(lake, "gold")


def test_onnx_parity_on_simulated_gold(gold: pl.DataFrame, tmp_path: Path) -> None:
    from altaviz.profiles import load_profile

    features = gold_feature_columns(load_profile("compressor"))
    det = AnomalyDetector(features, contamination=0.05, n_estimators=60).fit(gold)
    path = det.to_onnx(tmp_path / "anomaly.onnx")
    onnx = OnnxAnomalyScorer(path)
    # scored on the training gold plus the same readings as an unseen asset (fleet-level normalisation)
    probe = pl.concat([gold, gold.head(50).with_columns(pl.lit("COMP-NEW").alias("compressor_id"))])
    ref = det.score(probe)
    got = onnx.score(probe)
    diff = (ref.get_column("anomaly_score") - got.get_column("anomaly_score")).abs().max()
    assert diff <= 1e-5  # issue 3 bound; the double-precision graph gives ~1e-15
    assert ref.get_column("is_anomaly").equals(got.get_column("is_anomaly"))
    assert 0 < got.get_column("is_anomaly").sum() < probe.height
    assert onnx.features == features


def test_train_and_score_fleet_is_idempotent(
    lake: Path, gold: pl.DataFrame, clean_postgres_url: str, tmp_path: Path
) -> None:
    import psycopg

    from altaviz.ml.anomaly.scoring import score_fleet, train_fleet
    from altaviz.ml.registry import list_models
    from altaviz.settings import Settings

    settings = Settings(data_root=tmp_path, database_url=clean_postgres_url)
    version = train_fleet(settings, lake=lake, fast=True, contamination=0.05)
    [row] = list_models(settings)
    assert (row["family"], row["version"], row["aliases"]) == ("anomaly", version, ["champion"])
    assert row["metrics"]["onnx_labels_equal"] == 1.0
    assert row["metrics"]["onnx_max_abs_diff"] <= 1e-5

    # expected: per asset, the readings within one day of its last reading
    last = {a: g.get_column("timestamp").max() for (a,), g in gold.group_by("compressor_id")}
    expected = sum(
        1 for a, t in gold.select("compressor_id", "timestamp").iter_rows() if t > last[a] - timedelta(days=1)
    )
    rule = {(a, t): s != "normal" for a, t, s in gold.select("compressor_id", "timestamp", "health_status").iter_rows()}

    def table() -> list[tuple]:
        with psycopg.connect(clean_postgres_url) as conn:
            return conn.execute(
                "SELECT compressor_id, timestamp, rule_based_anomaly, model_version, sensor_values "
                "FROM ml_anomaly_predictions ORDER BY 1, 2"
            ).fetchall()

    assert score_fleet(settings, database_url=clean_postgres_url, lake=lake) == expected
    first = table()
    assert score_fleet(settings, database_url=clean_postgres_url, lake=lake) == expected
    second = table()
    assert len(first) == len(second) == expected
    assert [r[:4] for r in first] == [r[:4] for r in second]
    assert all(r[3] == version for r in second)
    assert all(r[2] == rule[(r[0], r[1])] for r in second)
    assert set(second[0][4]) == {"vibration_mms", "discharge_temp_f", "suction_pressure_psi",
                                 "discharge_pressure_psi", "horsepower", "gas_flow_mcfd"}  # fmt: skip


def test_onnx_graph_matches_skl2onnx_and_handles_one_leaf_trees(tmp_path: Path) -> None:
    import onnxruntime as ort
    from skl2onnx import to_onnx

    train = _fleet({"A": 3.0, "B": 30.0}, n=300, seed=8)
    det = AnomalyDetector(["a", "b"], contamination=0.03, n_estimators=12).fit(train)
    z = det.normaliser.transform(train)
    reference = to_onnx(det.forest, z[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    session = ort.InferenceSession(reference.SerializeToString(), providers=["CPUExecutionProvider"])
    labels, decision = session.run(["label", "scores"], {session.get_inputs()[0].name: z})
    ours = OnnxAnomalyScorer(det.to_onnx(tmp_path / "a.onnx")).score(train)
    # skl2onnx computes in float32: agreement to float32 rounding, labels identical
    assert np.abs(ours.get_column("anomaly_score").to_numpy() + decision.ravel() + det.forest.offset_).max() < 1e-5
    assert ours.get_column("is_anomaly").to_list() == (labels.ravel() == -1).tolist()

    constant = pl.DataFrame({"compressor_id": ["A"] * 20, "a": [1.0] * 20, "b": [2.0] * 20})
    flat = AnomalyDetector(["a", "b"], contamination=0.1, n_estimators=5).fit(constant)
    assert all(est.tree_.node_count == 1 for est in flat.forest.estimators_)
    got = OnnxAnomalyScorer(flat.to_onnx(tmp_path / "flat.onnx")).score(constant)
    assert got.get_column("anomaly_score").to_list() == flat.score(constant).get_column("anomaly_score").to_list()

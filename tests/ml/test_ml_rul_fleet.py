"""Fleet RUL on a real (small) simulated lake: ground-truth targets, training + registry, scoring into the real
PostgreSQL twice gives the same rows."""

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import psycopg
import pytest
import torch

from altaviz.lake.pipeline import run_etl
from altaviz.lake.tables import read_table
from altaviz.ml.rul.errors import RulDataError
from altaviz.ml.rul.fleet import (
    FleetScaler,
    feature_columns,
    fit_residuals,
    hourly,
    residual_groups,
    with_residuals,
    with_rul,
)
from altaviz.ml.rul.horizons import HorizonModel, OnnxHorizons, buckets
from altaviz.ml.rul.scoring import score_fleet, train_fleet
from altaviz.profiles import load_profile
from altaviz.settings import Settings
from altaviz.simulate import FaultRates, run_simulation

P = load_profile("compressor")
START = datetime(2026, 3, 2, tzinfo=UTC)
END = START + timedelta(days=10 + 30)  # censoring: the simulator records failures up to 30 days past the end


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("rulfleet")
    raw, lake = root / "raw", root / "lake"
    run_simulation(
        P,
        raw,
        assets=12,
        days=10,
        interval=timedelta(minutes=30),
        seed=5,
        fmt="parquet",
        start=START,
        faults=FaultRates.none(),
    )
    run_etl(raw, lake, P)
    return raw, lake


def test_rul_targets_follow_the_next_failure():
    t = [datetime(2026, 3, 2, h, tzinfo=UTC) for h in (0, 12)] + [datetime(2026, 3, 5, 0, tzinfo=UTC)]
    frame = pl.DataFrame({"compressor_id": ["A", "A", "A"], "timestamp": t})
    failures = pl.DataFrame(
        {"compressor_id": ["A"], "onset_time": ["2026-03-02T06:00:00Z"], "failure_time": ["2026-03-04T00:00:00Z"]}
    )
    out = with_rul(frame, failures, "compressor_id", "timestamp", datetime(2026, 3, 10, tzinfo=UTC))
    assert out["rul_days"].to_list() == [2.0, 1.5, 5.0]  # the last row: no later failure -> censored at Mar 10
    assert out["censored"].to_list() == [False, False, True]
    assert out["degrading"].to_list() == [False, True, False]


def test_healthy_side_centring_is_learned_on_training_rows_and_applied_to_new_assets():
    # training asset A: "up" rises and "down" falls in the last 7 days before a failure, "flat" does not move
    train = pl.DataFrame(
        {
            "compressor_id": ["A"] * 5,
            "rul_days": [40.0, 35.0, 31.0, 5.0, 1.0],
            "censored": [False] * 5,
            "up": [1.0, 1.0, 1.0, 5.0, 5.0],
            "down": [0.0, 0.0, 0.0, -4.0, -4.0],
            "flat": [3.0, 1.0, 2.0, 3.0, 1.0],
        }
    )
    scaler = FleetScaler.fit(train, "compressor_id", ["up", "down", "flat"], healthy_q=0.25)
    assert scaler.quantiles == [0.25, 0.75, 0.5]
    assert scaler.scale[0] == pytest.approx(4.8**0.5)  # "up" centred on its 25 % quantile (1): [0, 0, 0, 4, 4]
    # a new asset (serving: no ground truth in the frame), centred on its own quantiles, scaled with the fleet's;
    # each row on the quantile of the asset's rows up to it (causal), linear interpolation
    served = FleetScaler(["up", "down", "flat"], [1.0, 2.0, 4.0], scaler.quantiles)
    new = pl.DataFrame(
        {"compressor_id": ["B"] * 5, **{c: [10.0, 12.0, 14.0, 16.0, 18.0] for c in ("up", "down", "flat")}}
    )
    x = served.transform(new, "compressor_id")
    np.testing.assert_allclose(x[:, 0], [0, 1.5, 3, 4.5, 6])  # 25 % quantiles 10, 10.5, 11, 11.5, 12
    np.testing.assert_allclose(x[:, 1], [0, 0.25, 0.5, 0.75, 1])  # 75 %: 10, 11.5, 13, 14.5, 16; scale 2
    np.testing.assert_allclose(x[:, 2], [0, 0.25, 0.5, 0.75, 1])  # medians 10, 11, 12, 13, 14; scale 4
    np.testing.assert_array_equal(served.transform(new.head(3), "compressor_id"), x[:3])  # later rows change nothing
    # without ground truth at fit time (or an older model's saved scaler) every feature is on its median
    assert FleetScaler.fit(new, "compressor_id", ["up"]).quantiles is None
    np.testing.assert_allclose(FleetScaler(["up"], [1.0]).transform(new, "compressor_id")[:, 0], [0, 1, 2, 3, 4])


def test_extended_inputs_add_absolute_levels_trends_and_history_by_hand():
    h = [0, 1, 2, 3, 5]  # asset B has no reading at hour 4
    t = [START + timedelta(hours=k) for k in h] + [START, START + timedelta(hours=1)]
    frame = pl.DataFrame(
        {"compressor_id": ["B"] * 5 + ["C"] * 2, "timestamp": t, "up": [10.0, 12.0, 14.0, 16.0, 20.0, 50.0, 40.0]}
    )
    scaler = FleetScaler(["up"], [2.0], None, [10.0], [4.0], [2], True, "timestamp")
    assert scaler.n_inputs == 4
    x = scaler.transform(frame, "compressor_id")
    assert x.shape == (7, 4)
    np.testing.assert_allclose(x[:, 0], [0, 0.5, 1, 1.5, 3, 0, -2.5])  # x - causal median, / 2
    np.testing.assert_allclose(x[:, 1], [0, 0.5, 1, 1.5, 2.5, 10, 7.5])  # (x - 10) / 4, no centring
    # x(t) - x(last row at or before t - 2 h), / 2; the asset's first row while its history is shorter
    np.testing.assert_allclose(x[:, 2], [0, 1, 2, 2, 2, 0, -5])
    np.testing.assert_allclose(x[:, 3], np.log1p([0, 1, 2, 3, 5, 0, 1]), rtol=1e-6)  # hours of history
    np.testing.assert_array_equal(scaler.transform(frame.head(3), "compressor_id"), x[:3])  # causal
    # fitted: fleet mean / std of the training rows; a saved scaler round-trips through its JSON form
    train = frame.with_columns(rul_days=pl.Series([40.0, 35.0, 31.0, 5.0, 1.0, 50.0, 50.0]), censored=pl.lit(False))
    fitted = FleetScaler.fit(train, "compressor_id", ["up"], time_col="timestamp", extended=True)
    assert fitted.fleet_mean == [pytest.approx(162 / 7)] and fitted.trend_hours == [72, 168]
    assert fitted.n_inputs == 1 * (1 + 1 + 2) + 1
    again = FleetScaler(**json.loads(json.dumps(asdict(fitted))))
    np.testing.assert_array_equal(again.transform(train, "compressor_id"), fitted.transform(train, "compressor_id"))
    with pytest.raises(RulDataError, match="time column"):
        FleetScaler.fit(train, "compressor_id", ["up"], extended=True)
    with pytest.raises(RulDataError, match="expected time column 'timestamp'"):
        scaler.transform(frame.drop("timestamp"), "compressor_id")


def test_residual_inputs_are_fitted_on_healthy_rows_and_computed_first_by_hand():
    # healthy rows (rul > 30 or censored) follow a = 2 b + 1 and b = (a - 1) / 2 exactly; the row 5 days before the
    # failure breaks it (a drifts up with b unchanged) and must not move the fitted lines
    train = pl.DataFrame(
        {
            "compressor_id": ["A"] * 5,
            "rul_days": [50.0, 40.0, 35.0, 31.0, 5.0],
            "censored": [False, False, False, True, False],
            "a": [3.0, 5.0, 7.0, 9.0, 30.0],
            "b": [1.0, 2.0, 3.0, 4.0, 4.0],
        }
    )
    residuals = fit_residuals(train, [["a", "b"]])
    assert [r["name"] for r in residuals] == ["a_resid", "b_resid"]
    assert residuals[0]["inputs"] == ["b"] and residuals[0]["coef"] == [pytest.approx(2.0)]
    assert residuals[0]["intercept"] == pytest.approx(1.0)
    assert residuals[1]["coef"] == [pytest.approx(0.5)] and residuals[1]["intercept"] == pytest.approx(-0.5)
    out = with_residuals(train, residuals)
    np.testing.assert_allclose(out["a_resid"], [0, 0, 0, 0, 21], atol=1e-9)  # 30 - (2 * 4 + 1)
    np.testing.assert_allclose(out["b_resid"], [0, 0, 0, 0, 4 - 14.5], atol=1e-9)  # 4 - (30 - 1) / 2
    # fitted into the scaler: the residuals become features (centred, scaled like any other) and are computed
    # from the raw columns at transform time, also after a JSON round trip (serving reads only a and b)
    scaler = FleetScaler.fit(train, "compressor_id", ["a", "b"], healthy_q=None, residual_groups=[["a", "b"]])
    assert scaler.features == ["a", "b", "a_resid", "b_resid"] and scaler.n_inputs == 4
    served = FleetScaler(**json.loads(json.dumps(asdict(scaler))))
    x = served.transform(train.select("compressor_id", "a", "b"), "compressor_id")
    # a_resid minus its causal median (0 on every row), over its fleet-wide spread
    np.testing.assert_allclose(x[:, 2], [0, 0, 0, 0, 21 / scaler.scale[2]], atol=1e-6)
    np.testing.assert_array_equal(x, scaler.transform(train, "compressor_id"))
    # too few healthy rows for a fit: every row (here the drifting one pulls the line: a = 12.5 b - 30.5)
    few = fit_residuals(train.tail(3), [["a", "b"]])
    assert few[0]["coef"] == [pytest.approx(12.5)] and few[0]["intercept"] == pytest.approx(-30.5)
    with pytest.raises(RulDataError, match="expected more than 2 rows"):
        fit_residuals(train.head(2), [["a", "b"]])
    # the groups come from the profile's feature spec: the 4 h and the 24 h means of every sensor
    groups = residual_groups(P)
    assert groups == [[f"{s}_{w}_mean" for s in P.sensor_names] for w in ("4h", "24h")]


def test_failure_buckets_by_hand():
    rul = np.array([0.5, 7.0, 7.5, 14.0, 20.0, 31.0, 3.0, 40.0])
    censored = np.array([False] * 6 + [True, True])
    bucket, known = buckets(rul, censored, (7.0, 14.0, 30.0))
    assert bucket.tolist() == [0, 0, 1, 1, 2, 3, 0, 3]  # (.., 7], (7, 14], (14, 30], beyond
    assert known.tolist() == [True] * 6 + [False, True]  # a censored bound is known only beyond the last horizon


def test_failure_classifier_onnx_matches_sklearn_on_fleet_inputs(fleet, tmp_path):
    raw, lake = fleet
    gold = read_table(lake, "gold")
    features = feature_columns(P)
    frame = hourly(gold, P.id_column, P.time_column, features)
    frame = with_rul(frame, pl.read_csv(raw / "events" / "failures.csv"), P.id_column, P.time_column, END)
    scaler = FleetScaler.fit(frame, P.id_column, features, time_col=P.time_column, extended=True)
    x = scaler.transform(frame, P.id_column)
    rul, censored = frame["rul_days"].to_numpy(), frame["censored"].to_numpy()
    model = HorizonModel.fit(x, rul, censored, (7.0, 14.0, 30.0))
    expected = model.raw(x)
    assert np.all(np.diff(expected, axis=1) >= -1e-12)  # P(<= 7) <= P(<= 14) <= P(<= 30)
    near = (rul <= 7.0) & ~censored
    assert expected[near, 0].mean() > expected[rul > 30.0, 0].mean() + 0.5  # it learned the 7-day boundary
    path = model.to_onnx(tmp_path / "h.onnx")
    served = OnnxHorizons(path, model.payload()["classes"], 3).raw(x)
    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_train_then_score_twice_is_idempotent(fleet, tmp_path, clean_postgres_url):
    torch.set_num_threads(1)
    raw, lake = fleet
    settings = Settings(data_root=tmp_path / "data", database_url=clean_postgres_url)
    version = train_fleet(settings, raw_dir=raw, lake=lake, fast=True)
    assert version
    as_of = datetime(2026, 3, 11, 12, tzinfo=UTC)
    n1 = score_fleet(settings, database_url=clean_postgres_url, lake=lake, as_of=as_of)
    query = (
        "SELECT compressor_id, as_of, rul_days, p_fail_7d, p_fail_14d, p_fail_30d, model_version "
        "FROM rul_predictions ORDER BY 1"
    )
    with psycopg.connect(clean_postgres_url) as conn:
        first = conn.execute(query).fetchall()
    n2 = score_fleet(settings, database_url=clean_postgres_url, lake=lake, as_of=as_of)
    with psycopg.connect(clean_postgres_url) as conn:
        second = conn.execute(query).fetchall()
    assert n1 == n2 == 12 == len(first)
    assert first == second
    assert {r[1] for r in first} == {as_of} and {r[6] for r in first} == {version}
    probs = np.array([r[3:6] for r in first])
    assert np.all((probs >= 0) & (probs <= 1)) and np.all(np.diff(probs, axis=1) >= 0)
    assert all(0 <= r[2] <= 30 for r in first)

"""Model registry round trip on a local MLflow store in a temporary data root: register, champion, list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from altaviz.ml.registry import ModelNotFoundError, RegistryError, list_models, load_champion, register_model
from altaviz.settings import Settings


def test_register_champion_list_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALTAVIZ_MLFLOW_TRACKING_URI", raising=False)
    settings = Settings(data_root=tmp_path / "root")
    with pytest.raises(ModelNotFoundError, match="altaviz train anomaly"):
        load_champion(settings, "anomaly")

    model_v1 = tmp_path / "v1.onnx"
    model_v1.write_bytes(b"onnx-bytes-v1")
    scaler = tmp_path / "scaler.json"
    scaler.write_text(json.dumps({"mean": [1.0, 2.0]}))
    v1 = register_model(
        settings,
        "anomaly",
        model_v1,
        params={"contamination": 0.01, "n_estimators": 100},
        metrics={"flag_rate": 0.012},
        features=["a", "b"],
        gold_version=3,
        extra_files={"scaler": scaler},
    )
    model_v2 = tmp_path / "v2.onnx"
    model_v2.write_bytes(b"onnx-bytes-v2")
    v2 = register_model(
        settings, "anomaly", model_v2, params={}, metrics={}, features=["a"], gold_version=4, make_champion=False
    )
    v_rul = register_model(
        settings, "rul", model_v2, params={}, metrics={"rmse": 11.5}, features=["x"], gold_version=None
    )
    assert (v1, v2, v_rul) == ("1", "2", "1")

    champion = load_champion(settings, "anomaly")  # v2 was registered without taking the alias
    assert champion.version == "1"
    assert champion.onnx_path.read_bytes() == b"onnx-bytes-v1"
    assert champion.features == ["a", "b"]
    assert champion.params == {"contamination": 0.01, "n_estimators": 100}
    assert json.loads(champion.files["scaler"].read_text()) == {"mean": [1.0, 2.0]}
    assert (tmp_path / "root" / "mlflow" / "mlflow.db").is_file()

    rows = {(r["family"], r["version"]): r for r in list_models(settings)}
    assert set(rows) == {("anomaly", "1"), ("anomaly", "2"), ("rul", "1")}
    assert rows[("anomaly", "1")]["aliases"] == ["champion"]
    assert rows[("anomaly", "2")]["aliases"] == []
    assert rows[("anomaly", "1")]["metrics"] == {"flag_rate": 0.012}
    assert rows[("anomaly", "2")]["gold_version"] == "4"
    assert rows[("rul", "1")]["metrics"] == {"rmse": 11.5}

    monkeypatch.setenv("ALTAVIZ_DATA_ROOT", str(tmp_path / "root"))
    from altaviz.cli import app

    result = CliRunner().invoke(app, ["models", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "champion" in result.output and "rul" in result.output


def test_register_rejects_a_missing_file(tmp_path: Path) -> None:
    settings = Settings(data_root=tmp_path)
    with pytest.raises(RegistryError, match="expected an existing file"):
        register_model(settings, "anomaly", tmp_path / "nope.onnx", params={}, metrics={}, features=[], gold_version=0)

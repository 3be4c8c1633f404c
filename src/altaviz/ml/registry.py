"""Model registry: MLflow tracking + model registry on a local store (no server needed).

Tracking URI: `sqlite:///<data_root>/mlflow/mlflow.db`, artifacts under `<data_root>/mlflow/artifacts`; both can be
overridden with `ALTAVIZ_MLFLOW_TRACKING_URI` (any MLflow tracking URI, e.g. a server). Registered model names are
`altaviz-<family>`; the model in use carries the alias `champion`. Every registration is one MLflow run that logs
the params, metrics, the feature list and the Delta version of the gold table the model was trained on, with the
ONNX file (and any extra files) as artifacts under `model/`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from altaviz.errors import AltavizError

CHAMPION = "champion"
ENV_TRACKING_URI = "ALTAVIZ_MLFLOW_TRACKING_URI"
_MODEL_DIR = "model"
_MAX_PARAM = 6000


class RegistryError(AltavizError):
    """The model registry cannot do what was asked."""


class ModelNotFoundError(RegistryError):
    """No registered model (or no champion) for a family."""


@dataclass
class ChampionModel:
    family: str
    version: str
    onnx_path: Path
    features: list[str]
    params: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


def model_name(family: str) -> str:
    return f"altaviz-{family}"


def mlflow_root(settings) -> Path:
    return Path(settings.data_root).resolve() / "mlflow"


def tracking_uri(settings) -> str:
    override = os.environ.get(ENV_TRACKING_URI) or getattr(settings, "mlflow_tracking_uri", None)
    if override:
        return str(override)
    root = mlflow_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def _client(settings):
    import logging

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(settings)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _experiment_id(client, settings, family: str) -> str:
    name = model_name(family)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if not (os.environ.get(ENV_TRACKING_URI) or getattr(settings, "mlflow_tracking_uri", None)):
        location = (mlflow_root(settings) / "artifacts" / name).as_uri()
    return client.create_experiment(name, artifact_location=location)


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:_MAX_PARAM]


def register_model(
    settings,
    family: str,
    onnx_path: Path,
    *,
    params: dict,
    metrics: dict,
    features: list[str],
    gold_version: int | None,
    extra_files: dict[str, Path] | None = None,
    make_champion: bool = True,
) -> str:
    """Log one training run (params, metrics, features, gold version, ONNX + extra files) and register its model
    as a new version of `altaviz-<family>`; returns the version (and makes it the champion unless told not to)."""
    from mlflow.entities import Metric, Param

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise RegistryError(f"ONNX file {onnx_path}: expected an existing file, got none")
    extra_files = {k: Path(v) for k, v in (extra_files or {}).items()}
    for key, path in extra_files.items():
        if not path.is_file():
            raise RegistryError(f"extra file {key!r} at {path}: expected an existing file, got none")
    client = _client(settings)
    name = model_name(family)
    run = client.create_run(_experiment_id(client, settings, family), run_name=f"train-{family}")
    run_id = run.info.run_id
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    all_params = {**params, "family": family, "gold_version": gold_version, "n_features": len(features)}
    client.log_batch(
        run_id,
        params=[Param(str(k), _param_value(v)) for k, v in all_params.items()],
        metrics=[Metric(str(k), float(v), now_ms, 0) for k, v in metrics.items() if v is not None],
    )
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / _MODEL_DIR
        staged.mkdir()
        shutil.copyfile(onnx_path, staged / "model.onnx")
        manifest = {
            "family": family,
            "features": list(features),
            "params": {str(k): v for k, v in params.items()},
            "gold_version": gold_version,
            "files": {k: p.name for k, p in extra_files.items()},
        }
        (staged / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        for path in extra_files.values():
            shutil.copyfile(path, staged / path.name)
        client.log_artifacts(run_id, str(staged), artifact_path=_MODEL_DIR)
    client.set_terminated(run_id)
    try:
        client.get_registered_model(name)
    except Exception:  # noqa: BLE001 - MLflow raises its own RestException for "not found"
        client.create_registered_model(name, description=f"Altaviz {family} model (ONNX)")
    source = f"{client.get_run(run_id).info.artifact_uri}/{_MODEL_DIR}"
    mv = client.create_model_version(name, source, run_id=run_id, tags={"gold_version": str(gold_version)})
    if make_champion:
        client.set_registered_model_alias(name, CHAMPION, mv.version)
    return str(mv.version)


def load_champion(settings, family: str) -> ChampionModel:
    """The champion of a family, its artifacts downloaded once under `<data_root>/mlflow/cache/<family>/`."""
    import mlflow.artifacts

    client = _client(settings)
    name = model_name(family)
    try:
        mv = client.get_model_version_by_alias(name, CHAMPION)
    except Exception:  # noqa: BLE001 - MLflow raises RestException when the model or alias does not exist
        raise ModelNotFoundError(
            f"model {name}: expected a registered version with alias {CHAMPION!r}, got none "
            f"(run `altaviz train {family}` first)"
        ) from None
    cache = mlflow_root(settings) / "cache" / family / f"{mv.version}-{mv.run_id}"  # run id: no stale copy
    local = cache / _MODEL_DIR
    if not (local / "manifest.json").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=mv.source, dst_path=str(cache), tracking_uri=tracking_uri(settings)
            )
        )
    manifest = json.loads((local / "manifest.json").read_text())
    return ChampionModel(
        family=family,
        version=str(mv.version),
        onnx_path=local / "model.onnx",
        features=list(manifest["features"]),
        params=dict(manifest["params"]),
        files={key: local / fname for key, fname in manifest["files"].items()},
    )


def list_models(settings) -> list[dict]:
    """Every registered version of every family: family, version, aliases, created, metrics."""
    client = _client(settings)
    rows = []
    for rm in client.search_registered_models():
        family = rm.name.removeprefix("altaviz-")
        aliases_by_version: dict[str, list[str]] = {}
        for alias, version in (rm.aliases or {}).items():
            aliases_by_version.setdefault(str(version), []).append(alias)
        for mv in client.search_model_versions(f"name='{rm.name}'"):
            metrics = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
            rows.append(
                {
                    "family": family,
                    "version": str(mv.version),
                    "aliases": sorted(aliases_by_version.get(str(mv.version), [])),
                    "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC),
                    "metrics": dict(metrics),
                    "gold_version": (mv.tags or {}).get("gold_version"),
                }
            )
    rows.sort(key=lambda r: (r["family"], int(r["version"])))
    return rows

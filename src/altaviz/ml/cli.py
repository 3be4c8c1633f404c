"""ML command groups (`train`, `models`, `benchmark`, `detect`) and `altaviz score`, registered into the root CLI.

Each model family registers its own commands from its own module; heavy libraries (torch, scikit-learn, MLflow)
are imported inside the command bodies so `altaviz --help` stays fast.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from altaviz.console import friendly, out

train_app = typer.Typer(help="Train models from the gold features and register them.", no_args_is_help=True)
models_app = typer.Typer(help="The model registry (MLflow, local store by default).", no_args_is_help=True)
benchmark_app = typer.Typer(help="Benchmarks on public datasets; each prints one JSON line.", no_args_is_help=True)


class Family(StrEnum):
    all = "all"
    anomaly = "anomaly"
    rul = "rul"


def _parse_as_of(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"expected an ISO 8601 time, got {value!r}", param_hint="--as-of") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@friendly
def score(
    lake: Annotated[Path | None, typer.Option(help="Lake root (default: settings).")] = None,
    as_of: Annotated[str | None, typer.Option(help="Score as of this UTC time (default: newest gold reading).")] = None,
    model: Annotated[Family, typer.Option(help="Which champion models to score with.")] = Family.all,
) -> None:
    """Score every asset with the champion models into PostgreSQL (rul_predictions, ml_anomaly_predictions)."""
    from altaviz.serve.db.server import resolve_database_url
    from altaviz.settings import get_settings

    settings = get_settings()
    when = _parse_as_of(as_of)
    url = resolve_database_url(settings)
    if model in (Family.all, Family.anomaly):
        from altaviz.ml.anomaly.scoring import score_fleet as score_anomalies

        n = score_anomalies(settings, database_url=url, lake=lake, as_of=when)
        out.print(f"ml_anomaly_predictions: {n:,} rows")
    if model in (Family.all, Family.rul):
        from altaviz.ml.rul.scoring import score_fleet as score_rul

        n = score_rul(settings, database_url=url, lake=lake, as_of=when)
        out.print(f"rul_predictions: {n:,} rows")


def register(app: typer.Typer) -> None:
    from altaviz.ml.anomaly import cli as anomaly_cli
    from altaviz.ml.rul import cli as rul_cli

    anomaly_cli.register(app, train_app=train_app, models_app=models_app, benchmark_app=benchmark_app)
    rul_cli.register(app, train_app=train_app, models_app=models_app, benchmark_app=benchmark_app)
    app.command()(score)
    app.add_typer(train_app, name="train")
    app.add_typer(models_app, name="models")
    app.add_typer(benchmark_app, name="benchmark")

"""ML command groups (`train`, `models`, `benchmark`, `detect`, `score`) registered into the root CLI.

Each model family registers its own commands from its own module; heavy libraries (torch, scikit-learn, MLflow)
are imported inside the command bodies so `altaviz --help` stays fast.
"""

from __future__ import annotations

import typer

train_app = typer.Typer(help="Train models from the gold features and register them.", no_args_is_help=True)
models_app = typer.Typer(help="The model registry (MLflow, local store by default).", no_args_is_help=True)
benchmark_app = typer.Typer(help="Benchmarks on public datasets; each prints one JSON line.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    from altaviz.ml.anomaly import cli as anomaly_cli
    from altaviz.ml.rul import cli as rul_cli

    anomaly_cli.register(app, train_app=train_app, models_app=models_app, benchmark_app=benchmark_app)
    rul_cli.register(app, train_app=train_app, models_app=models_app, benchmark_app=benchmark_app)
    app.add_typer(train_app, name="train")
    app.add_typer(models_app, name="models")
    app.add_typer(benchmark_app, name="benchmark")

"""Commands of the anomaly model family, registered into the root CLI by `altaviz.ml.cli`."""

from __future__ import annotations

import typer


def register(app: typer.Typer, *, train_app: typer.Typer, models_app: typer.Typer, benchmark_app: typer.Typer) -> None:
    """Add this family's commands to the given groups."""

"""Commands of the rul model family, registered into the root CLI by `altaviz.ml.cli`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from altaviz.console import friendly, out


def register(app: typer.Typer, *, train_app: typer.Typer, models_app: typer.Typer, benchmark_app: typer.Typer) -> None:
    """Add this family's commands to the given groups."""

    @benchmark_app.command("cmapss")
    @friendly
    def benchmark_cmapss(
        data: Annotated[Path, typer.Option(help="Directory with train_/test_/RUL_<subset>.txt[.gz].")],
        subset: Annotated[str, typer.Option(help="Subset name, e.g. FD001 … FD004.")] = "FD001",
        kind: Annotated[str, typer.Option(help="Network: cnn (temporal CNN) or lstm.")] = "cnn",
        seeds: Annotated[int, typer.Option(min=1, help="Ensemble members (one seed each).")] = 3,
        max_epochs: Annotated[int, typer.Option(min=1, help="Epoch cap per member (early stopping).")] = 30,
        window: Annotated[int, typer.Option(min=2, help="Cycles per input window.")] = 40,
        threads: Annotated[int, typer.Option(min=1, help="Torch CPU threads.")] = 2,
        age: Annotated[bool, typer.Option(help="Give the model the cycle count (operating age) as an input.")] = True,
        onnx_out: Annotated[Path | None, typer.Option(help="Also export the ensemble to this ONNX file.")] = None,
    ) -> None:
        """Train on C-MAPSS train, score the last cycle of each test engine; prints one JSON line."""
        from altaviz.ml.rul.benchmark import run_cmapss
        from altaviz.ml.rul.training import RulConfig

        cfg = RulConfig(kind=kind, seeds=tuple(range(seeds)), max_epochs=max_epochs, window=window, threads=threads)
        result = run_cmapss(data, subset, cfg, age=age, onnx_out=onnx_out)
        print(json.dumps(result))

    @train_app.command("rul")
    @friendly
    def train_rul(
        raw: Annotated[Path, typer.Option(help="Simulator output directory (holds events/failures.csv).")],
        lake: Annotated[Path | None, typer.Option(help="Lake root (default: settings).")] = None,
        fast: Annotated[bool, typer.Option("--fast", help="Small, quick model (demo settings).")] = False,
    ) -> None:
        """Train the RUL model on gold features of the simulated fleet, register it as champion."""
        from altaviz.ml.rul.scoring import train_fleet_report
        from altaviz.settings import get_settings

        version, result = train_fleet_report(get_settings(), raw_dir=raw, lake=lake, fast=fast)
        print(json.dumps(result))
        out.print(f"registered altaviz-rul version {version} (alias champion)")

    _ = (app, models_app)

"""Commands of the anomaly model family, registered into the root CLI by `altaviz.ml.cli`.

`altaviz detect` (bring-your-own CSV), `altaviz train anomaly`, `altaviz models list`, `altaviz benchmark nab`.
Heavy libraries are imported inside the command bodies.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from altaviz.console import friendly, out
from altaviz.errors import AltavizError

_KEY_METRICS = ("flag_rate", "rule_agreement", "onnx_max_abs_diff", "rmse", "mae", "phm08_score", "f1_7d")


def _contamination(value: float) -> float:
    if not 0.0 < value <= 0.5:
        raise AltavizError(f"--contamination: expected a number in (0, 0.5], got {value}")
    return value


def detect(
    input_: Annotated[Path, typer.Option("--input", help="CSV file with a time column and numeric columns.")],
    time_column: Annotated[str, typer.Option("--time-column", help="Name of the time column.")],
    output: Annotated[Path, typer.Option("--output", help="Where to write timestamp, score, is_anomaly.")],
    columns: Annotated[str | None, typer.Option(help="Comma-separated columns to use (default: all numeric).")] = None,
    sep: Annotated[str, typer.Option(help="Field separator.")] = ",",
    contamination: Annotated[float, typer.Option(help="Expected share of anomalous readings.")] = 0.01,
) -> None:
    """Score any CSV time series with an Isolation Forest (no profile needed)."""
    from altaviz.ml.anomaly.series import load_series, score_series

    names = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    series = load_series(input_, time_column, names, sep=sep)
    scored = score_series(series, contamination=_contamination(contamination))
    output.parent.mkdir(parents=True, exist_ok=True)
    scored.write_csv(output)
    flagged = int(scored.get_column("is_anomaly").sum())
    out.print(
        f"scored {scored.height:,} rows of {', '.join(series.signals)}: {flagged:,} anomalous -> {output}",
        highlight=False,
    )


def train_anomaly(
    lake: Annotated[Path | None, typer.Option(help="Lake root (default: settings).")] = None,
    contamination: Annotated[float, typer.Option(help="Expected share of anomalous readings.")] = 0.01,
    fast: Annotated[bool, typer.Option("--fast", help="Fewer trees (demo settings).")] = False,
    profile: Annotated[str, typer.Option(help="Profile name or YAML path.")] = "compressor",
) -> None:
    """Train the fleet Isolation Forest on gold, export ONNX and register it as the champion."""
    from altaviz.ml.anomaly.scoring import train_fleet
    from altaviz.ml.registry import list_models
    from altaviz.settings import get_settings

    settings = get_settings()
    version = train_fleet(settings, lake=lake, fast=fast, contamination=_contamination(contamination), profile=profile)
    out.print(f"registered altaviz-anomaly version {version} (alias champion)", highlight=False)
    m = next(r["metrics"] for r in list_models(settings) if r["family"] == "anomaly" and r["version"] == version)
    out.print(
        f"ML vs rule-based status on {m['rule_readings']:,.0f} training readings: both {m['rule_both']:,.0f}, "
        f"ML only {m['rule_ml_only']:,.0f}, rules only {m['rule_rule_only']:,.0f}, neither {m['rule_neither']:,.0f}"
        f" (agreement {m['rule_agreement']:.1%}); ONNX parity max |diff| {m['onnx_max_abs_diff']:.1e}",
        highlight=False,
    )


def models_list() -> None:
    """List the registered model versions with their aliases and key metrics."""
    from rich.table import Table

    from altaviz.ml.registry import list_models
    from altaviz.settings import get_settings

    rows = list_models(get_settings())
    if not rows:
        out.print("no registered models (run `altaviz train anomaly` or `altaviz train rul`)")
        return
    table = Table(title="registered models")
    for col in ("family", "version", "aliases", "created", "gold version", "metrics"):
        table.add_column(col)
    for r in rows:
        metrics = r["metrics"]
        shown = {k: metrics[k] for k in _KEY_METRICS if k in metrics} or dict(sorted(metrics.items())[:4])
        table.add_row(
            r["family"],
            r["version"],
            ", ".join(r["aliases"]) or "-",
            r["created"].strftime("%Y-%m-%d %H:%M:%S"),
            str(r.get("gold_version") or "-"),
            ", ".join(f"{k}={v:.4g}" for k, v in shown.items()),
        )
    out.print(table)


def benchmark_nab(
    data: Annotated[Path, typer.Option(help="Directory with machine_temperature_system_failure.csv + labels.json.")],
    contamination: Annotated[float, typer.Option(help="Expected share of anomalous readings.")] = 0.01,
) -> None:
    """NAB machine temperature: labelled windows caught and false-alarm events (one JSON line)."""
    from altaviz.ml.anomaly.nab import run_benchmark

    result = run_benchmark(data, contamination=_contamination(contamination))
    sys.stdout.write(json.dumps(result) + "\n")


def register(app: typer.Typer, *, train_app: typer.Typer, models_app: typer.Typer, benchmark_app: typer.Typer) -> None:
    """Add this family's commands to the given groups."""
    app.command("detect")(friendly(detect))
    train_app.command("anomaly")(friendly(train_anomaly))
    models_app.command("list")(friendly(models_list))
    benchmark_app.command("nab")(friendly(benchmark_nab))

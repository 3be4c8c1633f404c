"""`altaviz demo`: simulate a fleet, run the ETL into the lake and PostgreSQL, train and score the models (small,
fast settings), print a short summary."""

from __future__ import annotations

import time
from datetime import timedelta

from rich.console import Console

from altaviz.settings import Settings


def run_demo(
    settings: Settings, *, assets: int = 10, days: int = 7, seed: int = 42, train: bool = True, console: Console
) -> dict:
    from altaviz.lake.pipeline import run_etl
    from altaviz.profiles import load_profile
    from altaviz.progress import RichProgress
    from altaviz.serve.db.server import resolve_database_url
    from altaviz.simulate import FaultRates, run_simulation

    started = time.perf_counter()
    profile = load_profile("compressor")
    raw = settings.data_root / "demo"
    sim = run_simulation(
        profile,
        raw,
        assets=assets,
        days=days,
        interval=timedelta(minutes=10),
        seed=seed,
        fmt="jsonl",
        faults=FaultRates(),
    )
    console.print(
        f"simulated {sim.rows:,} readings from {assets} compressors over {days} days "
        f"(failing: {', '.join(sim.failing_assets) or 'none'})"
    )
    url = resolve_database_url(settings)
    with RichProgress() as progress:
        report = run_etl(raw, settings.lake, profile, database_url=url, progress=progress)
    alerts = _alerts_by_severity(url)
    models = _train_and_score(settings, raw, url, console) if train else {}

    t = report.summary_table()
    t.title = "Altaviz demo"
    for severity, n in sorted(alerts.items()):
        t.add_row(f"alerts: {severity}", f"{n:,}")
    for name, value in models.items():
        t.add_row(name, value)
    t.add_row("lake", str(settings.lake.resolve()))
    t.add_row("database", url)
    t.add_row("seconds", f"{time.perf_counter() - started:.1f}")
    console.print(t)
    return {"report": report, "alerts": alerts, "database_url": url, "models": models}


def _train_and_score(settings: Settings, raw, url: str, console: Console) -> dict[str, str]:
    """Train both model families on the demo's gold (fast settings), register them, score into PostgreSQL."""
    from altaviz.ml.anomaly import scoring as anomaly
    from altaviz.ml.rul import scoring as rul

    with console.status("training the anomaly detector and the RUL model (fast settings)"):
        anomaly_version = anomaly.train_fleet(settings, fast=True)
        rul_version = rul.train_fleet(settings, raw_dir=raw, fast=True)
    anomalies = anomaly.score_fleet(settings, database_url=url)
    ruls = rul.score_fleet(settings, database_url=url)
    return {
        "model: anomaly (version)": anomaly_version,
        "model: rul (version)": rul_version,
        "scored: ml_anomaly_predictions": f"{anomalies:,}",
        "scored: rul_predictions": f"{ruls:,}",
    }


def _alerts_by_severity(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT severity, count(*) FROM alert_history GROUP BY severity").fetchall()
    return {str(s): int(n) for s, n in rows}

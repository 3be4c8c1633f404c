"""The `altaviz` command line: thin commands over the stage packages.

Every command turns an `AltavizError` (bad arguments, bad input paths, bad input data) into a one-line message
on stderr and exit code 2.
"""

from __future__ import annotations

import os
import sys
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from altaviz.console import friendly as _friendly
from altaviz.console import out
from altaviz.errors import AltavizError
from altaviz.ml.cli import register as register_ml_commands
from altaviz.settings import get_settings
from altaviz.stream.cli import register as register_stream_commands

app = typer.Typer(help="Altaviz: predictive maintenance for industrial equipment fleets.", no_args_is_help=True)
db_app = typer.Typer(help="The serving PostgreSQL database (embedded unless ALTAVIZ_DATABASE_URL is set).")
lake_app = typer.Typer(help="Inspect the Delta Lake tables.")
profiles_app = typer.Typer(help="Asset profiles.")
app.add_typer(db_app, name="db")
app.add_typer(lake_app, name="lake")
app.add_typer(profiles_app, name="profiles")


class Format(StrEnum):
    parquet = "parquet"
    csv = "csv"
    jsonl = "jsonl"


class LakeTable(StrEnum):
    bronze = "bronze"
    silver = "silver"
    quarantine = "quarantine"
    gold = "gold"
    ledger = "ledger"


def _parse_dates(values: list[str] | None) -> list[date] | None:
    if not values:
        return None
    parsed = []
    for v in values:
        try:
            parsed.append(date.fromisoformat(v))
        except ValueError:
            raise typer.BadParameter(f"expected a date YYYY-MM-DD, got {v!r}", param_hint="--date") from None
    return parsed


@app.command()
@_friendly
def simulate(
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path(".altaviz/raw_sim"),
    profile: Annotated[str, typer.Option(help="Profile name or YAML path.")] = "compressor",
    assets: Annotated[int, typer.Option(min=1, help="Number of assets.")] = 10,
    days: Annotated[int, typer.Option(min=1, help="Days of telemetry.")] = 7,
    interval: Annotated[str, typer.Option(help="Sampling interval, e.g. 10m, 1m, 30s.")] = "10m",
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same output).")] = 42,
    fmt: Annotated[Format, typer.Option("--format", help="Raw file format.")] = Format.parquet,
    start: Annotated[str | None, typer.Option(help="First timestamp (UTC, ISO 8601); default: days ago.")] = None,
    clean: Annotated[bool, typer.Option("--clean", help="Inject no data faults.")] = False,
) -> None:
    """Simulate a fleet: telemetry with failure modes, ground-truth events and realistic data faults."""
    from altaviz.profiles import load_profile, parse_duration
    from altaviz.simulate import FaultRates, run_simulation

    try:
        step = parse_duration(interval)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--interval") from None
    start_at = None
    if start is not None:
        try:
            start_at = datetime.fromisoformat(start.replace("Z", "+00:00"))
        except ValueError:
            raise typer.BadParameter(f"expected an ISO 8601 time, got {start!r}", param_hint="--start") from None
    report = run_simulation(
        load_profile(profile),
        out_dir,
        assets=assets,
        days=days,
        interval=step,
        seed=seed,
        fmt=fmt.value,
        start=start_at,
        faults=FaultRates.none() if clean else FaultRates(),
    )
    table = Table(title=f"Simulated {report.rows:,} rows into {report.out}")
    table.add_column("fault")
    table.add_column("rows", justify="right")
    for kind, n in sorted(report.faults.items()):
        table.add_row(kind, f"{n:,}")
    out.print(table)
    out.print(
        f"{report.files} files; failing assets: {', '.join(report.failing_assets) or 'none'}; {report.seconds:.2f} s"
    )


@app.command()
@_friendly
def etl(
    raw: Annotated[Path, typer.Option(help="Raw data directory (simulator layout or any files below it).")],
    lake: Annotated[Path | None, typer.Option(help="Lake root (default: settings).")] = None,
    date_: Annotated[list[str] | None, typer.Option("--date", help="Only these dates (YYYY-MM-DD); repeat.")] = None,
    profile: Annotated[str, typer.Option(help="Profile name or YAML path.")] = "compressor",
    skip_bronze: Annotated[bool, typer.Option("--skip-bronze", help="Do not ingest raw files.")] = False,
    skip_silver: Annotated[bool, typer.Option("--skip-silver", help="Do not rebuild silver.")] = False,
    skip_export: Annotated[bool, typer.Option("--skip-export", help="Do not export to PostgreSQL.")] = False,
    engine: Annotated[
        str | None, typer.Option(help="Engine of the silver/gold stages: polars or spark (default: settings).")
    ] = None,
    spark_remote: Annotated[
        str | None,
        typer.Option(help="Spark Connect URL sc://HOST:PORT (default: SPARK_REMOTE, else an embedded Sail server)."),
    ] = None,
) -> None:
    """Raw files -> bronze -> silver (+ quarantine) -> gold -> PostgreSQL."""
    from altaviz.lake.pipeline import run_etl
    from altaviz.profiles import load_profile
    from altaviz.progress import RichProgress

    settings = get_settings()
    if not raw.exists():
        raise AltavizError(f"raw directory {raw}: does not exist")
    dates = _parse_dates(date_)
    engine = engine or settings.engine
    if engine not in ("polars", "spark"):
        raise AltavizError(f"--engine {engine!r}: expected polars or spark")
    if spark_remote and engine != "spark":
        raise AltavizError(f"--spark-remote {spark_remote}: only used with --engine spark (got --engine {engine})")
    if spark_remote and not spark_remote.startswith("sc://"):
        raise AltavizError(f"--spark-remote {spark_remote!r}: expected a Spark Connect URL like sc://HOST:PORT")
    database_url = None
    if not skip_export:
        from altaviz.serve.db.server import resolve_database_url

        database_url = resolve_database_url(settings)
    kwargs = dict(dates=dates, skip_bronze=skip_bronze, skip_silver=skip_silver, database_url=database_url)
    with RichProgress() as progress:
        if engine == "spark":
            from altaviz.lake.spark_pipeline import run_etl_spark

            report = run_etl_spark(
                raw, lake or settings.lake, load_profile(profile), remote=spark_remote, progress=progress, **kwargs
            )
        else:
            report = run_etl(raw, lake or settings.lake, load_profile(profile), progress=progress, **kwargs)
    out.print(report.summary_table())


@app.command()
@_friendly
def demo(
    assets: Annotated[int, typer.Option(min=1)] = 10,
    days: Annotated[int, typer.Option(min=1)] = 7,
    seed: Annotated[int, typer.Option()] = 42,
    train: Annotated[bool, typer.Option("--train/--no-train", help="Also train and score the models.")] = True,
) -> None:
    """Simulate a fleet, run the ETL into the lake and PostgreSQL, train and score the models, and summarise."""
    from altaviz.demo import run_demo

    run_demo(get_settings(), assets=assets, days=days, seed=seed, train=train, console=out)


@lake_app.command("history")
@_friendly
def lake_history(
    table: Annotated[LakeTable, typer.Argument(help="Table name.")],
    lake: Annotated[Path | None, typer.Option(help="Lake root (default: settings).")] = None,
) -> None:
    """List the versions (commits) of a Delta table."""
    from altaviz.lake.tables import history

    rows = history(lake or get_settings().lake, table.value)
    t = Table(title=f"{table.value} history")
    for col in ("version", "timestamp", "operation", "parameters"):
        t.add_column(col)
    for r in rows:
        t.add_row(str(r["version"]), str(r["timestamp"]), str(r["operation"]), str(r.get("parameters", "")))
    out.print(t)


@lake_app.command("show")
@_friendly
def lake_show(
    table: Annotated[LakeTable, typer.Argument(help="Table name.")],
    lake: Annotated[Path | None, typer.Option(help="Lake root (default: settings).")] = None,
    as_of_version: Annotated[int | None, typer.Option("--as-of-version", help="Read this older version.")] = None,
    limit: Annotated[int, typer.Option(help="Rows to print.")] = 10,
) -> None:
    """Print the row count and the first rows of a Delta table (optionally an older version)."""
    from altaviz.lake.tables import read_table

    frame = read_table(lake or get_settings().lake, table.value, version=as_of_version)
    out.print(f"{table.value}: {frame.height:,} rows, {frame.width} columns")
    out.print(str(frame.head(limit)))


@lake_app.command("compact")
@_friendly
def lake_compact(
    table: Annotated[LakeTable, typer.Argument(help="Table name.")],
    lake: Annotated[Path | None, typer.Option(help="Lake root (default: settings).")] = None,
    date_: Annotated[list[str] | None, typer.Option("--date", help="Only these dates (YYYY-MM-DD); repeat.")] = None,
    target_mb: Annotated[int | None, typer.Option(min=1, help="Target file size in MB (default 256).")] = None,
) -> None:
    """Merge small files (e.g. the stream's bronze appends) into large ones; the rows do not change."""
    from altaviz.lake.maintenance import compact

    r = compact(lake or get_settings().lake, table.value, _parse_dates(date_), target_mb)
    out.print(
        f"{table.value}: {r.files_removed} files merged into {r.files_added} in {r.partitions} partition(s); "
        f"version {r.version_before} -> {r.version_after}"
    )


@lake_app.command("vacuum")
@_friendly
def lake_vacuum(
    table: Annotated[LakeTable, typer.Argument(help="Table name.")],
    lake: Annotated[Path | None, typer.Option(help="Lake root (default: settings).")] = None,
    retain_hours: Annotated[int, typer.Option(min=0, help="Keep what versions of the last N hours need.")] = 168,
    apply: Annotated[bool, typer.Option("--apply", help="Delete the files (default: only list them).")] = False,
    allow_short_retention: Annotated[
        bool, typer.Option("--allow-short-retention", help="Allow a retention below 168 h.")
    ] = False,
) -> None:
    """Delete the files no version within the retention period needs (a dry run unless --apply)."""
    from altaviz.lake.maintenance import vacuum

    files = vacuum(
        lake or get_settings().lake,
        table.value,
        retain_hours,
        dry_run=not apply,
        allow_short_retention=allow_short_retention,
    )
    verb = "deleted" if apply else "would delete (dry run; --apply deletes)"
    out.print(f"{table.value}: {verb} {len(files)} file(s)")


@db_app.command("start")
@_friendly
def db_start() -> None:
    """Start the embedded PostgreSQL server (data dir under the data root) and migrate it."""
    from altaviz.serve.db.server import start_embedded

    url = start_embedded(get_settings())
    out.print(f"PostgreSQL running: {url}")


@db_app.command("stop")
@_friendly
def db_stop() -> None:
    """Stop the embedded PostgreSQL server."""
    from altaviz.serve.db.server import stop_embedded

    stopped = stop_embedded(get_settings())
    out.print("stopped" if stopped else "not running")


@db_app.command("status")
@_friendly
def db_status() -> None:
    """Say whether the embedded server runs, and where."""
    from altaviz.serve.db.server import embedded_status

    status = embedded_status(get_settings())
    out.print(status.describe())
    if not status.running:
        raise typer.Exit(1)


@db_app.command("url")
@_friendly
def db_url() -> None:
    """Print the database URL alone (starting the embedded server if needed), for scripts."""
    from altaviz.serve.db.server import resolve_database_url

    sys.stdout.write(resolve_database_url(get_settings()) + "\n")


@profiles_app.command("list")
@_friendly
def profiles_list() -> None:
    """List the shipped asset profiles."""
    from altaviz.profiles import builtin_profiles

    for name in builtin_profiles():
        out.print(name)


@profiles_app.command("show")
@_friendly
def profiles_show(
    name: Annotated[str, typer.Argument(help="Profile name or YAML path.")] = "compressor",
) -> None:
    """Show a profile's sensors and the gold feature columns derived from it."""
    from altaviz.profiles import feature_spec, load_profile

    p = load_profile(name)
    t = Table(title=f"profile {p.name}: {p.description}")
    t.add_column("sensor", no_wrap=True)
    for col in ("unit", "physical range", "normal band", "warning", "critical"):
        t.add_column(col)
    for n, s in p.sensors.items():
        t.add_row(
            n,
            s.unit,
            f"{s.physical_range[0]:g} .. {s.physical_range[1]:g}",
            f"{s.normal_band[0]:g} .. {s.normal_band[1]:g}",
            str(s.warning.model_dump(exclude_none=True) if s.warning else "-"),
            str(s.critical.model_dump(exclude_none=True) if s.critical else "-"),
        )
    out.print(t)
    out.print(f"{len(feature_spec(p).columns)} gold feature columns")


register_ml_commands(app)
register_stream_commands(app)


# Commands that have committed their work and closed what they opened when they return. After one succeeds the
# process ends without the interpreter's teardown (freeing modules and native thread pools: ~0.15 s, about a
# tenth of a small `altaviz etl`). Only from the console script: in-process runners (tests) never get here.
QUICK_EXIT_COMMANDS = frozenset({"etl", "simulate"})


def main() -> None:
    try:
        app()
    except SystemExit as exc:
        command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
        if exc.code in (None, 0) and command in QUICK_EXIT_COMMANDS:
            import logging

            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        raise


if __name__ == "__main__":
    main()

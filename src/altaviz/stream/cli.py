"""Streaming commands (`broker`, `stream`), registered into the root CLI by `altaviz.cli`.

Heavy libraries (confluent-kafka, the ML stack) are imported inside the command bodies.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from altaviz.console import err, friendly, out
from altaviz.settings import get_settings

broker_app = typer.Typer(help="The embedded Kafka-protocol broker (Tansu, memory-only; development and tests).")
stream_app = typer.Typer(help="Real-time path: produce readings, process them, benchmark end to end.")

Partitions = Annotated[int, typer.Option(min=1, help="Partitions of the readings topic (when it is created).")]
Grace = Annotated[float, typer.Option(min=0.0, help="Seconds a window waits for out-of-order readings.")]


def _config(bootstrap: str, **kwargs: object):
    from altaviz.stream.config import StreamConfig

    return StreamConfig(bootstrap=bootstrap, **kwargs)  # type: ignore[arg-type]


@broker_app.command("start")
@friendly
def broker_start() -> None:
    """Start the embedded broker (state under the data root) unless it runs; print its bootstrap address."""
    from altaviz.stream.broker import resolve_bootstrap

    out.print(f"broker running: {resolve_bootstrap(get_settings())}")


@broker_app.command("stop")
@friendly
def broker_stop() -> None:
    """Stop the embedded broker (its topics and messages are lost: it keeps them in memory only)."""
    from altaviz.stream.broker import stop_broker

    out.print("stopped" if stop_broker(get_settings()) else "not running")


@broker_app.command("status")
@friendly
def broker_status() -> None:
    """Say whether the embedded broker runs, and where; exit 1 when it does not."""
    from altaviz.stream.broker import broker_status as status

    st = status(get_settings())
    out.print(st.describe())
    if not st.running:
        raise typer.Exit(1)


@stream_app.command("produce")
@friendly
def stream_produce(
    assets: Annotated[int, typer.Option(min=1, help="Simulated assets.")] = 100,
    rate: Annotated[float, typer.Option(min=0.001, help="Readings per second.")] = 1000.0,
    seconds: Annotated[float | None, typer.Option(min=0.001, help="Run time; default: until Ctrl-C.")] = None,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 42,
    clean: Annotated[bool, typer.Option("--clean", help="No data faults.")] = False,
    partitions: Partitions = 4,
) -> None:
    """Publish simulator readings (with the simulator's fault kinds) at a steady rate, keyed by asset id."""
    from altaviz.profiles import load_profile
    from altaviz.serve.db.server import resolve_database_url
    from altaviz.simulate.faults import FaultRates
    from altaviz.stream.broker import resolve_bootstrap
    from altaviz.stream.config import ensure_topics
    from altaviz.stream.producer import produce

    settings = get_settings()
    config = _config(resolve_bootstrap(settings), partitions=partitions)
    ensure_topics(config)
    stopping = {"flag": False}
    signal.signal(signal.SIGINT, lambda *_: stopping.update(flag=True))
    report = produce(
        config,
        resolve_database_url(settings),
        load_profile(config.profile),
        assets=assets,
        rate=rate,
        seconds=seconds,
        seed=seed,
        faults=FaultRates.none() if clean else None,
        stop=lambda: stopping["flag"],
    )
    out.print(
        f"produced {report.produced:,} readings in {report.seconds:.1f} s to {config.topic} "
        f"({report.failed} failed); simulated faults: {report.faults}"
    )


@stream_app.command("run")
@friendly
def stream_run(
    grace: Grace = 5.0,
    partitions: Partitions = 4,
    idle_exit: Annotated[float | None, typer.Option(help="Exit after this many idle seconds.")] = None,
    ml: Annotated[bool, typer.Option("--ml/--no-ml", help="Online anomaly detection.")] = True,
    lake: Annotated[Path | None, typer.Option(help="Lake root for the bronze append (default: settings).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines.")] = False,
    group: Annotated[str, typer.Option(help="Consumer group (processes of one group share the partitions).")] = (
        "altaviz-stream"
    ),
    topic: Annotated[str, typer.Option(help="Readings topic.")] = "sensor-readings",
    dead_letter_topic: Annotated[str, typer.Option(help="Dead-letter topic.")] = "sensor-readings-dlq",
) -> None:
    """Consume readings: validate, store raw rows and 1-minute windows in PostgreSQL, append bronze,
    dead-letter rejects and late readings. Run several in parallel to share the partitions."""
    from altaviz.profiles import load_profile
    from altaviz.serve.db.server import resolve_database_url
    from altaviz.stream.broker import resolve_bootstrap
    from altaviz.stream.config import ensure_topics
    from altaviz.stream.online import OnlineAnomaly
    from altaviz.stream.processor import Processor

    settings = get_settings()
    config = _config(
        resolve_bootstrap(settings),
        partitions=partitions,
        grace_seconds=grace,
        group=group,
        topic=topic,
        dead_letter_topic=dead_letter_topic,
    )
    ensure_topics(config)
    url = resolve_database_url(settings)
    profile = load_profile(config.profile)
    anomaly = OnlineAnomaly.create(settings, url, profile) if ml else None
    last = {"n": 0}

    def report(c) -> None:
        if not quiet and c.messages - last["n"] >= 100_000:
            last["n"] = c.messages
            err.print(f"{c.messages:,} messages: {c.stored:,} stored, {c.dead_lettered:,} dead-lettered {c.by_reason}")

    def assigned(ids: list[int]) -> None:
        err.print(f"assigned partitions {ids}")

    proc = Processor(config, url, lake or settings.lake, profile, anomaly=anomaly, on_batch=report, on_assign=assigned)
    signal.signal(signal.SIGTERM, lambda *_: setattr(proc, "stop", True))
    signal.signal(signal.SIGINT, lambda *_: setattr(proc, "stop", True))
    c = proc.run(idle_exit_s=idle_exit)
    out.print(
        f"{c.messages:,} messages: {c.stored:,} stored, {c.dead_lettered:,} dead-lettered {c.by_reason}, "
        f"{c.windows_closed:,} window closes, {c.predictions:,} predictions"
    )


@stream_app.command("bench")
@friendly
def stream_bench(
    rate: Annotated[float, typer.Option(min=1.0, help="Readings per second.")] = 50_000.0,
    seconds: Annotated[float, typer.Option(min=1.0, help="Producing time.")] = 60.0,
    assets: Annotated[int, typer.Option(min=1, help="Simulated assets.")] = 1000,
    kill_after: Annotated[float | None, typer.Option(help="SIGKILL the processor after K s, restart it.")] = None,
    processors: Annotated[int, typer.Option(min=1, help="Processor processes in the group (one per core).")] = 2,
    partitions: Partitions = 4,
    grace: Grace = 5.0,
    ml: Annotated[bool, typer.Option("--ml/--no-ml", help="Online anomaly detection in the processor.")] = False,
    clean: Annotated[bool, typer.Option("--clean", help="No data faults.")] = False,
) -> None:
    """Start what is needed in a scratch data root, produce, drain, print one JSON line of results."""
    from altaviz.stream.bench import run_bench

    result = run_bench(
        rate=rate,
        seconds=seconds,
        assets=assets,
        kill_after=kill_after,
        processors=processors,
        partitions=partitions,
        grace=grace,
        ml=ml,
        clean=clean,
    )
    sys.stdout.write(json.dumps(result) + "\n")


def register(app: typer.Typer) -> None:
    """Add the streaming command groups to the root app."""
    app.add_typer(broker_app, name="broker")
    app.add_typer(stream_app, name="stream")

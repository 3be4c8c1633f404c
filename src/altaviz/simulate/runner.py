"""`run_simulation`: simulate a fleet and write it to disk in one of the raw layouts."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from altaviz.profiles.model import Profile
from altaviz.simulate.engine import simulate_fleet
from altaviz.simulate.faults import FaultRates, SimulationError
from altaviz.simulate.writers import FORMATS, ISO, write_jsonl, write_partitioned, write_reference

MANIFEST = "simulation.json"
OWNED = ("raw", "events", "reference")


@dataclass
class SimulationReport:
    rows: int  # rows (JSONL: lines) written to the raw files, faults included
    faults: dict[str, int]  # injected faults by kind (rows; `stuck`: readings inside flatlined stretches)
    failing_assets: list[str]  # assets that fail inside the window
    files: int  # raw data files
    out: Path
    seconds: float


def _prepare(out: Path) -> None:
    """Clear what a previous simulation wrote; refuse to clear folders the simulator did not write."""
    if out.exists() and not out.is_dir():
        raise SimulationError(f"output {out}: exists and is not a directory")
    present = [name for name in OWNED if (out / name).exists()]
    if present and not (out / MANIFEST).is_file():
        raise SimulationError(
            f"output {out}: already has {', '.join(present)} but no {MANIFEST}; expected an empty folder "
            "or a previous simulator output"
        )
    for name in present:
        shutil.rmtree(out / name)
    out.mkdir(parents=True, exist_ok=True)


def run_simulation(
    profile: Profile,
    out: Path,
    *,
    assets: int,
    days: int,
    interval: timedelta,
    seed: int,
    fmt: str,
    start: datetime | None = None,
    faults: FaultRates | None = None,
) -> SimulationReport:
    """Simulate and write raw files (`fmt` 'parquet', 'csv' or 'jsonl'), fleet metadata and ground truth."""
    began = time.perf_counter()
    if fmt not in FORMATS:
        raise SimulationError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    faults = faults if faults is not None else FaultRates()
    if fmt != "jsonl" and faults.malformed:
        faults = dataclasses.replace(faults, malformed=0.0)  # only JSONL has lines to break
    fleet = simulate_fleet(profile, assets, days, interval, seed, start=start, faults=faults)
    out = Path(out)
    _prepare(out)
    raw = out / "raw"
    raw.mkdir()
    files = write_jsonl(fleet, raw) if fmt == "jsonl" else write_partitioned(fleet, raw, fmt)
    write_reference(fleet, out)
    manifest = {
        "profile": profile.name,
        "format": fmt,
        "assets": assets,
        "days": days,
        "interval_seconds": int(interval.total_seconds()),
        "seed": seed,
        "start": fleet.start.strftime(ISO),
        "end": fleet.end.strftime(ISO),
        "rows": fleet.readings.height,
        "files": files,
        "faults": fleet.fault_counts,
        "failing_assets": fleet.failing_assets,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return SimulationReport(
        rows=fleet.readings.height,
        faults=dict(fleet.fault_counts),
        failing_assets=list(fleet.failing_assets),
        files=files,
        out=out,
        seconds=time.perf_counter() - began,
    )

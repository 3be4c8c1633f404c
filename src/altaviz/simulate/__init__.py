"""Fleet simulator: telemetry with failure modes, ground-truth events and realistic data faults.

`simulate_fleet` builds everything as frames (no I/O); `run_simulation` writes the raw files (JSONL, Parquet
or CSV layouts), the fleet metadata and the ground-truth events.
"""

from altaviz.simulate.engine import SimulatedFleet, default_start, simulate_fleet
from altaviz.simulate.faults import FaultRates, SimulationError
from altaviz.simulate.runner import SimulationReport, run_simulation

__all__ = [
    "FaultRates",
    "SimulatedFleet",
    "SimulationReport",
    "SimulationError",
    "default_start",
    "run_simulation",
    "simulate_fleet",
]

"""NAB machine-temperature benchmark, repeated: one JSON line with the counts and the median of the timings.

Usage: python benchmarks/bench_nab.py [DATA_DIR] [REPEATS]   (default tests/data/nab, 3)
Same scoring as `altaviz benchmark nab`: the detector is fitted on the file itself (unsupervised).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from altaviz.ml.anomaly.nab import run_benchmark


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent.parent / "tests" / "data" / "nab"
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    runs = [run_benchmark(data) for _ in range(repeats)]
    result = dict(runs[0])
    result["seconds"] = round(statistics.median(r["seconds"] for r in runs), 3)
    result["seconds_runs"] = [r["seconds"] for r in runs]
    result["stable"] = all(
        (r["windows_detected"], r["false_alarms"]) == (runs[0]["windows_detected"], runs[0]["false_alarms"])
        for r in runs
    )
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()

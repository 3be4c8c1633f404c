"""NAB benchmark: load the machine-temperature series and its labelled windows, turn alarms into events, count.

Alarm events: the flagged readings, with flags closer together than `merge_gap` (default: the detector's short
window, 12 x the sampling interval = 1 h on NAB) merged into one event (one incident raises one alarm, as an
operator would see it). A labelled window is detected when an event overlaps it; an event overlapping no window is
one false alarm.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path

from altaviz.errors import AltavizError

SERIES_FILE = "machine_temperature_system_failure.csv"
LABELS_FILE = "labels.json"
LABEL_KEY = f"realKnownCause/{SERIES_FILE}"

Window = tuple[datetime, datetime]


class NabDataError(AltavizError):
    """The NAB directory does not hold the expected files."""


def load_windows(path: Path) -> list[Window]:
    """The labelled windows of the series from a NAB `combined_windows.json`-style file."""
    path = Path(path)
    if not path.is_file():
        raise NabDataError(f"labels {path}: expected NAB labels JSON, got no file")
    try:
        labels = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise NabDataError(f"labels {path}: expected JSON, got {exc}") from None
    if LABEL_KEY not in labels:
        raise NabDataError(f"labels {path}: expected key {LABEL_KEY!r}, got {sorted(labels)[:5]}")
    return [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in labels[LABEL_KEY]]


def alarm_events(times: list[datetime], flags: list[bool], merge_gap: timedelta) -> list[Window]:
    """Maximal runs of flagged readings (time-ordered), merging flags at most `merge_gap` apart."""
    events: list[list[datetime]] = []
    for t, flag in zip(times, flags, strict=True):
        if not flag:
            continue
        if events and t - events[-1][1] <= merge_gap:
            events[-1][1] = t
        else:
            events.append([t, t])
    return [(a, b) for a, b in events]


def _overlaps(a: Window, b: Window) -> bool:
    return a[0] <= b[1] and a[1] >= b[0]


def count_events(events: list[Window], windows: list[Window]) -> dict[str, int]:
    """windows_detected (windows overlapped by an event), false_alarms (events overlapping no window)."""
    return {
        "windows_detected": sum(any(_overlaps(e, w) for e in events) for w in windows),
        "false_alarms": sum(not any(_overlaps(e, w) for w in windows) for e in events),
        "n_windows": len(windows),
        "n_events": len(events),
    }


def run_benchmark(data: Path, *, contamination: float = 0.01) -> dict:
    """Score the NAB series unsupervised (fit on the file itself) and count detected windows and false alarms."""
    from altaviz.ml.anomaly.series import load_series, score_series, windows_for

    data = Path(data)
    series_path = data / SERIES_FILE
    if not series_path.is_file():
        raise NabDataError(f"NAB data {data}: expected {SERIES_FILE}, got no such file")
    windows = load_windows(data / LABELS_FILE)
    started = time.perf_counter()
    series = load_series(series_path, "timestamp")
    scored = score_series(series, contamination=contamination)
    seconds = time.perf_counter() - started
    merge_gap, _ = windows_for(series.frame)
    events = alarm_events(
        scored.get_column("timestamp").to_list(), scored.get_column("is_anomaly").to_list(), merge_gap
    )
    return {
        "benchmark": "nab",
        "series": SERIES_FILE,
        "rows": scored.height,
        **count_events(events, windows),
        "flagged_readings": int(scored.get_column("is_anomaly").sum()),
        "contamination": contamination,
        "merge_gap_minutes": merge_gap.total_seconds() / 60,
        "seconds": round(seconds, 3),
    }

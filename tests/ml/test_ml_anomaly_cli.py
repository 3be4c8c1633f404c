"""`altaviz detect` on bring-your-own CSVs (happy path, irregular sampling, missing values, bad input) and the
NAB loader / alarm-event counting against hand-computed cases."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from altaviz.cli import app
from altaviz.ml.anomaly.nab import alarm_events, count_events, load_windows

runner = CliRunner()
NAB = Path(__file__).parent.parent / "data" / "nab"


def _irregular_csv(path: Path, sep: str = ",") -> tuple[datetime, datetime]:
    """Two signals, jittered 1-4 minute sampling, some missing values, a sustained excursion in one hour."""
    rng = np.random.default_rng(5)
    steps = rng.integers(60, 240, size=3000)
    start = datetime(2024, 3, 1)
    times = [start + timedelta(seconds=int(s)) for s in np.cumsum(steps)]
    temp = 60 + rng.standard_normal(3000)
    flow = 200 + 5 * rng.standard_normal(3000)
    t0, t1 = times[2000], times[2000] + timedelta(hours=1)
    inside = np.array([t0 <= t <= t1 for t in times])
    temp[inside] += 15.0
    temp[rng.choice(3000, 60, replace=False)] = np.nan
    frame = pl.DataFrame(
        {
            "when": [t.strftime("%Y-%m-%d %H:%M:%S") for t in times],
            "site": ["north"] * 3000,
            "temp": temp,
            "flow": flow,
        }
    ).with_columns(pl.col("temp").fill_nan(None))
    frame.write_csv(path, separator=sep)
    return t0, t1


def test_detect_scores_every_row_and_finds_the_excursion(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.csv", tmp_path / "out" / "scores.csv"
    t0, t1 = _irregular_csv(src, sep=";")
    result = runner.invoke(
        app, ["detect", "--input", str(src), "--time-column", "when", "--sep", ";", "--output", str(dst)]
    )
    assert result.exit_code == 0, result.output
    scores = pl.read_csv(dst, try_parse_dates=True)
    assert scores.columns == ["timestamp", "score", "is_anomaly"]
    assert scores.height == 3000
    assert scores.get_column("score").is_finite().all()
    inside = scores.filter(pl.col("timestamp").is_between(t0, t1))
    outside = scores.filter(~pl.col("timestamp").is_between(t0, t1))
    assert inside.get_column("is_anomaly").mean() > 0.5
    assert outside.get_column("is_anomaly").mean() < 0.02
    assert inside.get_column("score").median() > outside.get_column("score").quantile(0.99)


def test_detect_with_selected_columns(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.csv", tmp_path / "scores.csv"
    _irregular_csv(src)
    args = ["detect", "--input", str(src), "--time-column", "when", "--columns", "flow", "--output", str(dst)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "flow" in result.output and "temp" not in result.output
    assert pl.read_csv(dst).height == 3000


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ("", [], "empty file"),
        ("when,value\n", [], "only a header"),
        ("when,label\n2024-01-01 00:00,a\n2024-01-01 00:10,b\n", [], "at least one numeric column"),
        ("when,value\nyesterday,1\nsoon,2\n", [], "unparseable"),
        ("time,value\n2024-01-01 00:00,1\n", [], "time column 'when': not in"),
        ("when,value\n2024-01-01 00:00,1\n", ["--columns", "value,pressure"], "--columns pressure: not in"),
        ("when,value,label\n2024-01-01 00:00,1,a\n", ["--columns", "label"], "expected numeric columns"),
    ],
    ids=["empty", "header-only", "no-numeric", "bad-times", "no-time-column", "unknown-column", "text-column"],
)
def test_detect_rejects_unusable_input(tmp_path: Path, content: str, extra: list[str], message: str) -> None:
    src = _write(tmp_path / "bad.csv", content)
    args = ["detect", "--input", str(src), "--time-column", "when", "--output", str(tmp_path / "o.csv"), *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert message in text
    assert len(result.output.strip().splitlines()) <= 2  # one message (soft-wrapped at most once by the terminal)
    assert not (tmp_path / "o.csv").exists()


def test_nab_labels_load_the_four_windows() -> None:
    windows = load_windows(NAB / "labels.json")
    assert len(windows) == 4
    assert windows[0] == (datetime(2013, 12, 10, 6, 25), datetime(2013, 12, 12, 5, 35))
    assert windows[3] == (datetime(2014, 2, 7, 14, 55), datetime(2014, 2, 9, 14, 5))


def _t(minutes: int) -> datetime:
    return datetime(2024, 1, 1) + timedelta(minutes=minutes)


def test_alarm_events_merge_flags_closer_than_the_gap() -> None:
    times = [_t(5 * i) for i in range(12)]
    flags = [False, True, True, False, True, False, False, False, False, False, True, False]
    # flags at 5, 10, 20 min merge (gaps 5 and 10 <= 10); the flag at 50 min is 30 min later: a new event
    assert alarm_events(times, flags, timedelta(minutes=10)) == [(_t(5), _t(20)), (_t(50), _t(50))]
    assert alarm_events(times, flags, timedelta(minutes=5)) == [(_t(5), _t(10)), (_t(20), _t(20)), (_t(50), _t(50))]
    assert alarm_events(times, [False] * 12, timedelta(minutes=10)) == []


def test_count_events_against_windows() -> None:
    windows = [(_t(100), _t(200)), (_t(300), _t(400)), (_t(500), _t(600))]
    events = [
        (_t(90), _t(105)),  # overlaps window 1 from before: a detection
        (_t(150), _t(160)),  # second event in window 1: neither a new detection nor a false alarm
        (_t(250), _t(260)),  # between windows: false alarm
        (_t(610), _t(620)),  # after the last window: false alarm
    ]
    assert count_events(events, windows) == {"windows_detected": 1, "false_alarms": 2, "n_windows": 3, "n_events": 4}
    assert count_events([], windows)["windows_detected"] == 0


def test_benchmark_and_train_fail_clearly_without_data(tmp_path: Path) -> None:
    result = runner.invoke(app, ["benchmark", "nab", "--data", str(tmp_path)])
    assert result.exit_code == 2
    assert "machine_temperature_system_failure.csv" in result.output
    result = runner.invoke(app, ["train", "anomaly", "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 2
    assert "gold" in result.output and "not found" in result.output
    result = runner.invoke(app, ["train", "anomaly", "--lake", str(tmp_path), "--contamination", "0.7"])
    assert result.exit_code == 2
    assert "--contamination" in result.output

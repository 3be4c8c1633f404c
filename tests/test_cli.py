"""CLI contract: one-line errors with exit code 2 for bad arguments and bad input paths."""

from __future__ import annotations

import shutil
import subprocess
import sys

from typer.testing import CliRunner

from altaviz.cli import app

runner = CliRunner()


def test_bad_input_path_is_one_line_exit_2(tmp_path):
    result = runner.invoke(app, ["etl", "--raw", str(tmp_path / "missing"), "--skip-export"])
    assert result.exit_code == 2
    assert "does not exist" in result.output and "Traceback" not in result.output


def test_bad_arguments_exit_2(tmp_path):
    assert runner.invoke(app, ["simulate", "--interval", "soon", "--out", str(tmp_path)]).exit_code == 2
    assert runner.invoke(app, ["simulate", "--format", "xml", "--out", str(tmp_path)]).exit_code == 2
    assert runner.invoke(app, ["etl", "--raw", str(tmp_path), "--date", "2026-13-01", "--skip-export"]).exit_code == 2
    result = runner.invoke(app, ["simulate", "--profile", "turbine", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown" in result.output


def test_profiles_show_lists_sensors_and_feature_count():
    result = runner.invoke(app, ["profiles", "show", "compressor"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "vibration_mms" in result.output and "71 gold feature columns" in result.output


def test_console_script_is_installed():
    exe = shutil.which("altaviz") or str(__import__("pathlib").Path(sys.executable).with_name("altaviz"))
    proc = subprocess.run([exe, "profiles", "list"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "compressor" in proc.stdout


def test_score_rejects_a_bad_as_of_time():
    result = runner.invoke(app, ["score", "--as-of", "yesterday-ish"])
    assert result.exit_code == 2
    assert "ISO 8601" in result.output


def test_console_script_quick_exit_keeps_output_files_and_exit_codes(tmp_path):
    """`etl` / `simulate` end without interpreter teardown (`cli.main`): the summary is still printed in full,
    the lake is committed, and a failing command keeps its exit code 2."""
    import polars as pl

    cli = [sys.executable, "-m", "altaviz.cli"]
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    sim = subprocess.run(
        [*cli, "simulate", "--assets", "2", "--days", "1", "--out", str(raw)], capture_output=True, text=True
    )
    assert sim.returncode == 0, sim.stderr
    etl = subprocess.run(
        [*cli, "etl", "--raw", str(raw), "--lake", str(lake), "--skip-export"], capture_output=True, text=True
    )
    assert etl.returncode == 0, etl.stderr
    assert "time: gold" in etl.stdout  # the last row of the summary table made it out
    gold = pl.scan_delta(str(lake / "gold" / "sensor_features")).select(pl.len()).collect().item()
    silver = pl.scan_delta(str(lake / "silver" / "sensor_readings")).select(pl.len()).collect().item()
    assert gold == silver > 0
    bad = subprocess.run([*cli, "etl", "--raw", str(tmp_path / "missing"), "--skip-export"], capture_output=True)
    assert bad.returncode == 2

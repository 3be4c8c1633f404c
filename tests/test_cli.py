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

"""The `altaviz simulate` command drives the simulator."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from altaviz.cli import app


def test_simulate_command_writes_a_jsonl_fleet(tmp_path):
    out = tmp_path / "sim"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--assets",
            "4",
            "--days",
            "2",
            "--format",
            "jsonl",
            "--out",
            str(out),
            "--start",
            "2026-03-02T00:00:00Z",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "failing assets" in result.output
    manifest = json.loads((out / "simulation.json").read_text())
    assert manifest["assets"] == 4 and manifest["format"] == "jsonl" and manifest["start"] == "2026-03-02T00:00:00Z"
    assert len(list((out / "raw" / "2026" / "03" / "02").rglob("*.jsonl"))) == 4
    assert (out / "reference" / "compressors.csv").is_file()


def test_simulate_clean_flag_injects_nothing(tmp_path):
    out = tmp_path / "sim"
    result = CliRunner().invoke(app, ["simulate", "--assets", "3", "--days", "1", "--clean", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert all(v == 0 for v in json.loads((out / "simulation.json").read_text())["faults"].values())

"""Atomic Delta writes: predicate (partition) replace, and a process killed mid-write leaves the previous version."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date

import polars as pl
from deltalake import DeltaTable

from altaviz.lake.delta_writer import write_delta

D1, D2 = date(2026, 1, 1), date(2026, 1, 2)


def frame(n: int, day: date, value: float) -> pl.DataFrame:
    return pl.DataFrame({"x": [value] * n, "i": list(range(n)), "date": [day] * n})


def test_replace_only_touches_named_partitions(tmp_path):
    t = tmp_path / "t"
    assert write_delta(t, pl.concat([frame(3, D1, 1.0), frame(2, D2, 2.0)])) == 0
    assert write_delta(t, frame(4, D1, 5.0), mode="replace", replace_partitions=[D1]) == 1
    got = pl.read_delta(str(t)).sort("date", "i")
    assert got.filter(pl.col("date") == D1)["x"].to_list() == [5.0] * 4
    assert got.filter(pl.col("date") == D2)["x"].to_list() == [2.0] * 2
    # an older version is still readable (time travel)
    assert pl.read_delta(str(t), version=0).height == 5


def test_replace_with_empty_frame_empties_the_partition(tmp_path):
    t = tmp_path / "t"
    write_delta(t, pl.concat([frame(3, D1, 1.0), frame(2, D2, 2.0)]))
    write_delta(t, frame(0, D1, 0.0), mode="replace", replace_partitions=[D1])
    assert pl.read_delta(str(t))["date"].to_list() == [D2, D2]


def test_same_input_twice_gives_identical_table(tmp_path):
    t = tmp_path / "t"
    data = pl.concat([frame(3, D1, 1.0), frame(2, D2, 2.0)])
    write_delta(t, data)
    before = pl.read_delta(str(t)).sort("date", "i")
    write_delta(t, data, mode="replace", replace_partitions=[D1, D2])
    assert pl.read_delta(str(t)).sort("date", "i").equals(before)
    assert DeltaTable(str(t)).version() == 1


def test_sigkill_before_commit_leaves_previous_version_and_rerun_completes(tmp_path):
    t = tmp_path / "t"
    write_delta(t, frame(10, D1, 1.0))
    marker = tmp_path / "files-written"
    child = textwrap.dedent(
        f"""
        import time, pathlib
        import polars as pl
        from datetime import date
        from deltalake import DeltaTable
        from altaviz.lake.delta_writer import write_delta

        def hang(self, *a, **k):  # the Parquet files are on disk; block right before the commit
            pathlib.Path({str(marker)!r}).write_text("ok")
            time.sleep(600)

        DeltaTable.create_write_transaction = hang
        data = pl.DataFrame({{"x": [9.0] * 50_000, "i": list(range(50_000)), "date": [date(2026, 1, 1)] * 50_000}})
        write_delta({str(t)!r}, data, mode="replace", replace_partitions=[date(2026, 1, 1)])
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child])
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), "the child never reached the commit"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    parquet_files = list((t / "date=2026-01-01").glob("*.parquet"))
    assert len(parquet_files) == 2  # the old file and the orphan written by the killed process
    assert DeltaTable(str(t)).version() == 0
    assert pl.read_delta(str(t))["x"].to_list() == [1.0] * 10
    # a re-run completes and the orphan is not part of the table
    write_delta(t, frame(5, D1, 3.0), mode="replace", replace_partitions=[D1])
    assert pl.read_delta(str(t))["x"].to_list() == [3.0] * 5

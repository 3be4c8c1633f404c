"""The stream producer's plan (no broker): without injected faults no reading would arrive late, even with every
asset in one partition (a gap in one asset's series must not push its rows ahead of the fleet's), and the plan
holds about rate x seconds messages keyed by asset."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np

from altaviz.profiles import load_profile
from altaviz.simulate.faults import FaultRates
from altaviz.stream.producer import plan_messages
from altaviz.stream.validate import closed_mark

MIN_US, GRACE_US = 60_000_000, 5_000_000


def _late(values: list[bytes]) -> int:
    """Messages whose window a single watermark over all messages (in emission order) had already closed."""
    stamps = [datetime.fromisoformat(json.loads(v)["timestamp"].replace("Z", "+00:00")) for v in values]
    t = np.array([int(s.timestamp() * 1_000_000) for s in stamps], dtype=np.int64)
    before = np.maximum.accumulate(np.concatenate([[t[0]], t[:-1]]))
    return int(np.sum(t < closed_mark(before, MIN_US, GRACE_US)))


def test_a_clean_plan_has_no_late_readings():
    profile = load_profile("compressor")
    t0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    # 4 minutes of event time (a simulated day passes in 2 minutes), so windows close during the plan
    clean = plan_messages(profile, 100, 1000, 240, faults=FaultRates.none(), t0=t0, seed=7)
    assert len(clean.values) == len(clean.keys) > 230_000
    assert all(
        json.loads(v)["compressor_id"].encode() == k
        for v, k in zip(clean.values[:1000], clean.keys[:1000], strict=True)
    )
    assert _late(clean.values) == 0  # ordering rows by their position in the asset's file gave ~4 % here


def test_a_plan_with_faults_sends_its_late_readings_late():
    """The simulator's late rows (a day late, at the end of a later day's file) reach the stream as late readings;
    they used to arrive with the file's last rows and fall beyond the plan's cut."""
    profile = load_profile("compressor")
    t0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    planned = plan_messages(profile, 100, 1000, 240, faults=FaultRates(), t0=t0, seed=7)
    horizon = int(t0.timestamp() * 1_000_000) + 3_600_000_000  # leaves the far-future rows out
    stamps = []
    for v in planned.values:
        try:
            stamp = datetime.fromisoformat(json.loads(v)["timestamp"].replace("Z", "+00:00"))
        except (ValueError, KeyError, TypeError):  # malformed lines, wrong types
            continue
        if stamp.timestamp() * 1_000_000 < horizon:
            stamps.append(int(stamp.timestamp() * 1_000_000))
    t = np.array(stamps, dtype=np.int64)
    before = np.maximum.accumulate(np.concatenate([[t[0]], t[:-1]]))
    late = int(np.sum(t < closed_mark(before, MIN_US, GRACE_US)))
    assert planned.faults["late"] > 100
    assert 0.9 * planned.faults["late"] <= late <= planned.faults["late"]

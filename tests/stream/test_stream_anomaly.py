"""Online anomaly detection in the processor: the models layer's Isolation Forest fitted on the stream's
recent readings, predictions upserted into ml_anomaly_predictions with the rule-based flag beside them."""

from __future__ import annotations

import psycopg

from altaviz.ml.anomaly.detector import AnomalyDetector
from altaviz.profiles import load_profile
from altaviz.stream.online import OnlineAnomaly


def test_online_detector_flags_the_odd_readings(stream, fleet_url, tmp_path, kit):
    profile = load_profile("compressor")

    def factory():
        return AnomalyDetector(profile.sensor_names, asset_column=profile.id_column, n_estimators=50)

    online = OnlineAnomaly(factory, profile, window_rows=300, refit_s=3600)
    seen = {(0, 20), (1, 40), (2, 60)}  # (asset index, second): vibration far off, discharge temperature too
    odd = {(1, 80), (2, 87), (3, 95)}  # the same kind of reading after the fit
    messages = []
    for second in range(100):
        for i, asset in enumerate(kit.assets):
            wobble = ((second * 13 + i * 7) % 11) / 10  # deterministic small variation
            sensors = {"vibration_mms": 2.5 + wobble, "discharge_temp_f": 215.0 + 3 * wobble}
            if (i, second) in odd | seen:
                sensors = {"vibration_mms": 14.0, "discharge_temp_f": 310.0}
            stamp = f"2026-01-05T00:{second // 60:02d}:{second % 60:02d}Z"
            messages.append((asset, kit.reading(asset, stamp, **sensors)))
    # the first 300 readings (75 s, three odd ones among them) make the first fit, whatever the broker's batching;
    # an Isolation Forest scores a point beyond everything it saw like the most extreme point it saw, so the
    # fit includes odd readings, as a live window would
    kit.send(stream, messages[:300])
    kit.run_processor(stream, fleet_url, tmp_path / "lake", anomaly=online)
    assert online.fits == 1
    kit.send(stream, messages[300:])
    kit.run_processor(stream, fleet_url, tmp_path / "lake", anomaly=online)
    assert online.fits == 1
    with psycopg.connect(fleet_url) as conn:
        rows = conn.execute(
            "SELECT compressor_id, extract(epoch FROM timestamp - '2026-01-05T00:00:00Z')::int, anomaly_score, "
            "is_anomaly, rule_based_anomaly, rule_status, model_version, sensor_values->>'vibration_mms' "
            "FROM ml_anomaly_predictions ORDER BY anomaly_score DESC"
        ).fetchall()
    assert len(rows) >= 100  # every reading from the first fit (300 readings) on is scored
    later = [r for r in rows if r[1] >= 75]  # scored by the first fit, whatever the batching
    assert len(later) == 100
    top = later[:3]
    assert {(kit.assets.index(r[0]), r[1]) for r in top} == odd
    assert all(r[3] and r[4] and r[5] == "critical" and r[6].startswith("online-") for r in top)
    assert float(top[0][7]) == 14.0
    flagged_normal = [r for r in later[3:] if r[3]]
    assert len(flagged_normal) <= 0.05 * len(rows)


class _CountingOnline(OnlineAnomaly):
    """The real online detector, recording how many readings each scoring call was fed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fed: list[int] = []

    def score_batch(self, accepted):
        self.fed.append(accepted.height)
        return super().score_batch(accepted)


def test_a_batch_retried_after_a_key_conflict_scores_each_reading_once(stream, fleet_url, tmp_path, kit):
    """A second consumer group replays stored messages with new ones behind them: the COPY hits stored keys
    (KeyConflict), the batch is retried with the database's answer, and the retry reuses the first attempt's
    scores. Scoring again would feed the new readings into the online window a second time."""
    import dataclasses

    profile = load_profile("compressor")

    def factory():
        return AnomalyDetector(profile.sensor_names, asset_column=profile.id_column, n_estimators=20)

    def batch(first_second: int, seconds: int) -> list[tuple[str, bytes]]:
        return [
            (asset, kit.reading(asset, f"2026-01-05T00:00:{s:02d}Z", vibration_mms=2.5 + (s * 7 + i) % 5 / 10))
            for s in range(first_second, first_second + seconds)
            for i, asset in enumerate(kit.assets)
        ]

    stored, new = batch(0, 30), batch(30, 20)
    kit.send(stream, stored)
    kit.run_processor(stream, fleet_url, tmp_path / "lake", anomaly=OnlineAnomaly(factory, profile, window_rows=40))
    kit.send(stream, new)
    replay = dataclasses.replace(stream, group=stream.group + "-replay")  # reads the topic from the start
    online = _CountingOnline(factory, profile, window_rows=40, refit_s=3600)
    counters = kit.run_processor(replay, fleet_url, tmp_path / "lake", anomaly=online)
    assert counters.stored == len(new) and counters.messages == len(stored) + len(new)
    assert max(online.fed) > len(new)  # a batch held stored and new readings together: the retried path ran
    assert sum(online.fed) == len(stored) + len(new)  # every reading fed to the online window exactly once
    with psycopg.connect(fleet_url) as conn:
        scored_new = conn.execute(
            "SELECT count(*) FROM ml_anomaly_predictions WHERE timestamp >= '2026-01-05T00:00:30Z'"
        ).fetchone()[0]
        assert conn.execute("SELECT count(*) FROM sensor_readings").fetchone()[0] == len(stored) + len(new)
    assert scored_new == len(new)

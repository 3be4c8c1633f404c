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
    odd = {(1, 17), (2, 33), (3, 48)}  # (asset index, second): vibration far off, discharge temperature too
    messages = []
    for second in range(100):
        for i, asset in enumerate(kit.assets):
            wobble = ((second * 13 + i * 7) % 11) / 10  # deterministic small variation
            sensors = {"vibration_mms": 2.5 + wobble, "discharge_temp_f": 215.0 + 3 * wobble}
            if (i, second) in odd:
                sensors = {"vibration_mms": 14.0, "discharge_temp_f": 310.0}
            stamp = f"2026-01-05T00:{second // 60:02d}:{second % 60:02d}Z"
            messages.append((asset, kit.reading(asset, stamp, **sensors)))
    kit.send(stream, messages)
    kit.run_processor(stream, fleet_url, tmp_path / "lake", anomaly=online)
    assert online.fits >= 1
    with psycopg.connect(fleet_url) as conn:
        rows = conn.execute(
            "SELECT compressor_id, extract(second FROM timestamp)::int, anomaly_score, is_anomaly, "
            "rule_based_anomaly, rule_status, model_version, sensor_values->>'vibration_mms' "
            "FROM ml_anomaly_predictions ORDER BY anomaly_score DESC"
        ).fetchall()
    assert len(rows) >= 100  # every reading scored once the first fit (300 readings) happened
    top = rows[:3]
    assert {(kit.assets.index(r[0]), r[1]) for r in top} == odd
    assert all(r[3] and r[4] and r[5] == "critical" and r[6].startswith("online-") for r in top)
    assert float(top[0][7]) == 14.0
    flagged_normal = [r for r in rows[3:] if r[3]]
    assert len(flagged_normal) <= 0.05 * len(rows)

"""Online anomaly detection for the stream: the models layer's Isolation Forest, refitted on recent readings.

The processor keeps the most recent `window_rows` accepted readings of the profile (default 1,000) and refits
an `AnomalyDetector` (altaviz.ml.anomaly.detector) on them every `refit_s` seconds (default 300); the first fit
happens as soon as enough readings have been seen. In `altaviz stream run` fits run on a worker thread and the
new model replaces the old one when ready (readings keep flowing meanwhile). Until the first fit no ML
predictions are written. Every accepted reading scored by a fitted model yields one `ml_anomaly_predictions`
row (upserted on asset id + timestamp) with the ML flag beside the rule-based flag from the profile's
thresholds. The model version reads `online-<n>` (the n-th fit of this process).
"""

from __future__ import annotations

import threading
import time

import polars as pl

from altaviz.console import err
from altaviz.profiles.model import Profile

WINDOW_ROWS = 1_000
REFIT_S = 300.0
SERVING_ID = "compressor_id"


class OnlineAnomaly:
    def __init__(
        self,
        detector_factory,
        profile: Profile,
        window_rows: int = WINDOW_ROWS,
        refit_s: float = REFIT_S,
        background: bool = False,
    ):
        self.factory, self.profile = detector_factory, profile
        self.window_rows, self.refit_s = window_rows, refit_s
        self.background = background  # fit on a worker thread (the stream keeps flowing meanwhile)
        self.recent = pl.DataFrame()
        self.model = None
        self.fits = 0
        self.fitted_at = 0.0
        self.fitting: threading.Thread | None = None
        self.error: BaseException | None = None

    @classmethod
    def create(cls, settings, database_url: str, profile: Profile) -> OnlineAnomaly | None:
        """An online detector, or None (with a warning) when the models layer has no AnomalyDetector."""
        try:
            from altaviz.ml.anomaly.detector import AnomalyDetector
        except ImportError as exc:
            err.print(f"[yellow]warning:[/] online anomaly detection off: models layer unavailable ({exc})")
            return None

        def factory():
            return AnomalyDetector(list(profile.sensor_names), asset_column=profile.id_column)

        return cls(factory, profile, background=True)

    def _remember(self, readings: pl.DataFrame) -> None:
        cols = [self.profile.id_column, self.profile.time_column, *self.profile.sensor_names]
        fresh = readings.select(cols)
        self.recent = fresh.tail(self.window_rows) if self.recent.is_empty() else pl.concat([self.recent, fresh])
        self.recent = self.recent.tail(self.window_rows)

    def _fit(self, recent: pl.DataFrame) -> None:
        try:
            model = self.factory().fit(recent)
        except BaseException as exc:  # surfaced on the processor's thread
            self.error = exc
            return
        self.model = model  # one reference swap: scoring sees the old or the new model, never half of one
        self.fits += 1

    def _maybe_refit(self) -> None:
        self._raise_fit_error()
        due = self.model is None or time.monotonic() - self.fitted_at >= self.refit_s
        busy = self.fitting is not None and self.fitting.is_alive()
        if not due or busy or self.recent.height < self.window_rows:
            return
        self.fitted_at = time.monotonic()
        if self.background:
            self.fitting = threading.Thread(target=self._fit, args=(self.recent,), name="altaviz-refit", daemon=True)
            self.fitting.start()
        else:
            self._fit(self.recent)
            self._raise_fit_error()

    def _raise_fit_error(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def score_batch(self, accepted: pl.DataFrame) -> pl.DataFrame | None:
        """Prediction rows for the accepted readings (None before the first fit)."""
        if accepted.is_empty():
            return None
        self._remember(accepted)
        self._maybe_refit()
        model = self.model
        if model is None:
            return None
        p = self.profile
        scored = model.score(accepted.select(p.id_column, p.time_column, *p.sensor_names))
        return pl.DataFrame(
            {
                SERVING_ID: accepted.get_column(p.id_column),
                "timestamp": accepted.get_column(p.time_column),
                "sensor_values": accepted.select(pl.struct(p.sensor_names).struct.json_encode()).to_series(),
                "is_anomaly": scored.get_column("is_anomaly").cast(pl.Boolean),
                "anomaly_score": scored.get_column("anomaly_score").cast(pl.Float64),
                "rule_based_anomaly": accepted.get_column("alert_mask") != 0,
                "rule_status": accepted.get_column("rule_status"),
                "model_version": pl.repeat(f"online-{self.fits}", accepted.height, dtype=pl.String, eager=True),
            }
        )

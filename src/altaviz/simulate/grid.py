"""The simulation grid: readings laid out as (day, asset, slot), so that the flat (C) order of every grid
array is already the order of the day files (date, then asset, then time).

Step k of the window is at start + k * interval; UTC day d holds steps [day_start[d], day_start[d + 1]) in
slots 0..n. Days with fewer steps than `slots` (a window that starts mid-day, or an interval that does not
divide a day) have padding slots, which are never alive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY = 86_400


@dataclass
class Grid:
    start_s: int  # epoch seconds
    interval_s: int
    steps: int
    assets: int
    first_day: int  # epoch day number of day 0
    day_start: np.ndarray  # (days + 1,) first step index of each day, then `steps`
    slots: int

    @classmethod
    def build(cls, start_s: int, interval_s: int, steps: int, assets: int) -> Grid:
        epoch = start_s + np.arange(steps, dtype=np.int64) * interval_s
        day = epoch // DAY
        first = int(day[0])
        edges = np.flatnonzero(np.diff(day)) + 1
        day_start = np.concatenate([[0], edges, [steps]]).astype(np.int64)
        slots = int(np.diff(day_start).max())
        return cls(start_s, interval_s, steps, assets, first, day_start, slots)

    @property
    def days(self) -> int:
        return len(self.day_start) - 1

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.days, self.assets, self.slots)

    @property
    def size(self) -> int:
        return self.days * self.assets * self.slots

    def day_length(self) -> np.ndarray:
        return np.diff(self.day_start)

    def valid(self) -> np.ndarray:
        """(days, 1, slots) True for real steps, False for padding."""
        return (np.arange(self.slots)[None, :] < self.day_length()[:, None])[:, None, :]

    def epoch_s(self) -> np.ndarray:
        """(days, 1, slots) float64 epoch seconds of each slot (padding repeats the day's last step)."""
        slot = np.minimum(np.arange(self.slots)[None, :], self.day_length()[:, None] - 1)
        step = self.day_start[:-1, None] + slot
        return (self.start_s + step * self.interval_s).astype(np.float64)[:, None, :]

    def epoch_us(self) -> np.ndarray:
        """(days, slots) int64 epoch microseconds of each slot."""
        return (self.epoch_s()[:, 0, :].astype(np.int64)) * 1_000_000

    def steps_of(self, t: np.ndarray) -> np.ndarray:
        """Index of the first step at or after each epoch second (clipped to [0, steps])."""
        k = np.ceil((np.asarray(t, dtype=np.float64) - self.start_s) / self.interval_s).astype(np.int64)
        return np.clip(k, 0, self.steps)

    def cell(self, asset: np.ndarray, step: np.ndarray) -> np.ndarray:
        """Flat grid index of (asset, step)."""
        day = np.searchsorted(self.day_start, step, side="right") - 1
        slot = step - self.day_start[day]
        return (day * self.assets + asset) * self.slots + slot

    def per_asset(self, values: np.ndarray | float) -> np.ndarray:
        """(1, assets, 1) float32, to broadcast against grid arrays."""
        return np.broadcast_to(np.asarray(values, dtype=np.float32), (self.assets,)).reshape(1, -1, 1)

"""Line index of text files (JSONL, CSV), vectorised with NumPy: no Python object per line on the fast path.

Several small files are read as one chunk (their bytes concatenated, each ending in a newline): the index maps
every line back to its file and to its 0-based line number inside that file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_WS = np.zeros(256, dtype=bool)
_WS[[9, 10, 11, 12, 13, 32]] = True  # \t \n \v \f \r space


@dataclass
class LineIndex:
    data: bytes
    starts: np.ndarray  # int64 byte offset of each line
    stops: np.ndarray  # int64 end of each line, excluding the newline
    blank: np.ndarray  # bool, only whitespace on the line
    file: np.ndarray  # int64 index of the file the line belongs to
    line: np.ndarray  # int64 0-based line number inside its file

    @classmethod
    def build(cls, parts: list[bytes]) -> LineIndex:
        """Index the lines of the files `parts` (raw bytes, one entry per file) read as one chunk."""
        fixed = [p if not p or p.endswith(b"\n") else p + b"\n" for p in parts]
        data = fixed[0] if len(fixed) == 1 else b"".join(fixed)
        arr = np.frombuffer(data, dtype=np.uint8)
        newlines = np.flatnonzero(arr == 10)
        starts = np.concatenate(([0], newlines + 1)).astype(np.int64)
        stops = np.concatenate((newlines, [len(arr)])).astype(np.int64)
        if starts[-1] == len(arr):  # data ends with a newline (or is empty): no line after it
            starts, stops = starts[:-1], stops[:-1]
        # a line is blank when it is empty or only whitespace; only lines starting with whitespace need a look
        blank = np.zeros(len(starts), dtype=bool)
        if len(starts):
            empty = starts == stops
            maybe = np.flatnonzero(~empty & _WS[arr[np.minimum(starts, max(len(arr) - 1, 0))]])
            blank[empty] = True
            for i in maybe:
                blank[i] = not data[starts[i] : stops[i]].strip()
        offsets = np.cumsum([0] + [len(p) for p in fixed]).astype(np.int64)
        file = np.searchsorted(offsets, starts, side="right") - 1
        first_line = np.searchsorted(starts, offsets[:-1], side="left")
        line = np.arange(len(starts), dtype=np.int64) - first_line[file]
        return cls(data, starts, stops, blank, file.astype(np.int64), line)

    def __len__(self) -> int:
        return len(self.starts)

    def text(self, i: int) -> str:
        """Line `i` as text (undecodable bytes replaced), without its line ending."""
        raw = self.data[self.starts[i] : self.stops[i]]
        return raw.decode("utf-8", errors="replace").removesuffix("\r")

    def texts(self, idx: np.ndarray) -> list[str]:
        return [self.text(int(i)) for i in idx]

    def select(self, idx: np.ndarray) -> bytes:
        """The lines `idx` (ascending) joined as one text, each ending with a newline."""
        if len(idx) == len(self.starts):
            return self.data if self.data.endswith(b"\n") or not self.data else self.data + b"\n"
        if len(idx) and idx[-1] - idx[0] + 1 == len(idx):  # one run of lines: a slice
            return self.data[self.starts[idx[0]] : self.stops[idx[-1]]] + b"\n"
        arr = np.frombuffer(self.data, dtype=np.uint8)
        keep = np.zeros(len(self.starts), dtype=bool)
        keep[idx] = True
        seg = np.diff(np.append(self.starts, len(arr)))  # each line with its newline
        out = arr[np.repeat(keep, seg)].tobytes()
        return out if out.endswith(b"\n") or not out else out + b"\n"

    def counts(self, byte: int) -> np.ndarray:
        """How often `byte` occurs on each line."""
        arr = np.frombuffer(self.data, dtype=np.uint8)
        hits = np.flatnonzero(arr == byte)
        return np.searchsorted(hits, self.stops, side="left") - np.searchsorted(hits, self.starts, side="left")

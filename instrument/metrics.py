"""Metrics and rate-limited error reports.

Counters are plain attributes written by one thread and read by others (a word-sized read of
a Python int/float is atomic under the GIL); nothing here locks on the decode worker.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TextIO

import numpy as np


class Window:
    """The last ``size`` values of a measure (a preallocated ring, no allocation per add)."""

    def __init__(self, size: int = 2048) -> None:
        self._values = np.full(size, np.nan)
        self._pos = 0
        self.count = 0

    def add(self, value: float) -> None:
        self._values[self._pos] = value
        self._pos = (self._pos + 1) % len(self._values)
        self.count += 1

    def clear(self) -> None:
        self._values[:] = np.nan
        self._pos = 0

    def values(self) -> np.ndarray:
        v = self._values
        return v[np.isfinite(v)]

    def percentile(self, q: float) -> float:
        v = self.values()
        return float(np.percentile(v, q)) if v.size else float("nan")


class Histogram:
    """Every value since start, in fixed bins (one increment per value, no allocation): the
    whole-run median and spread of a long soak, which a window of the last values is not."""

    def __init__(self, bin_s: float = 5e-5, top_s: float = 1.0) -> None:
        self.bin_s = bin_s
        self.counts = np.zeros(round(top_s / bin_s) + 1, dtype=np.int64)
        self.count = 0
        self._sum = 0.0
        self._sum_sq = 0.0

    def add(self, value: float) -> None:
        i = int(value / self.bin_s) if value > 0 else 0
        self.counts[min(i, self.counts.size - 1)] += 1
        self.count += 1
        self._sum += value
        self._sum_sq += value * value

    def median_sd_ms(self) -> tuple[float, float]:
        """Median (to the bin, at its centre) and standard deviation (exact), ms."""
        if not self.count:
            return float("nan"), float("nan")
        half = np.searchsorted(np.cumsum(self.counts), (self.count + 1) / 2)
        mean = self._sum / self.count
        var = max(0.0, self._sum_sq / self.count - mean * mean)
        return float((half + 0.5) * self.bin_s * 1e3), float(np.sqrt(var) * 1e3)


class Metrics:
    """What the live line, the state messages and the benchmarks read."""

    def __init__(self) -> None:
        self.frames = 0
        self.underruns = 0  # ring ran dry: rtmixer dropped the playback action
        self.device_underflows = 0  # PortAudio's own output underflow flags
        self.decode_s = Window()
        self.latency_s = Window(512)  # the live figure: the last 512 measurements
        self.latency_run = Histogram()  # the whole run's (the stop line, soaks)
        self.ring_fill = 0
        self.ring_capacity = 0
        self.rms_db = -120.0
        self.peak_db = -120.0
        # faults (decode worker): a bad frame is NaN/inf out of the model or a raise in decode
        self.bad_frames = 0
        self.decode_errors = 0  # the raises among bad_frames
        self.model_resets = 0  # fresh streaming state after bad frames
        self.fallbacks = 0  # a model that stayed bad replaced by the previous one
        self.over_budget = 0  # frames whose decode took longer than the frame lasts

    def decode_ms(self) -> tuple[float, float]:
        return self.decode_s.percentile(50) * 1e3, self.decode_s.percentile(99) * 1e3

    def latency_ms(self) -> tuple[float, float]:
        """Median and jitter (standard deviation) of control→sound latency, ms."""
        v = self.latency_s.values()
        if not v.size:
            return float("nan"), float("nan")
        return float(np.median(v) * 1e3), float(np.std(v) * 1e3)


class Reporter:
    """Counts rejected input per kind; prints at most one line per kind per ``interval_s``.

    ``sink`` also receives each printed message (e.g. to send ``/sillage/state/error``).
    """

    def __init__(
        self,
        *,
        interval_s: float = 1.0,
        stream: TextIO | None = None,
        sink: Callable[[str], None] | None = None,
    ) -> None:
        self.counts: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()
        self.stream = stream
        self.sink = sink
        self.unsent: deque[str] = deque(maxlen=16)  # printed, not yet sent as state

    def reject(self, kind: str, message: str, *, always: bool = False) -> None:
        """Count one rejected input; print it unless this kind printed less than
        ``interval_s`` ago (``always``: rare events that must never be hidden, e.g. a failed
        model load)."""
        self.counts[kind] += 1
        self._emit(kind, f"sillage: rejected ({kind}): {message}", always)

    def _emit(self, kind: str, text: str, always: bool) -> None:
        now = time.monotonic()
        if not always and now - self._last.get(kind, -1e9) < self.interval_s:
            self._suppressed[kind] += 1
            return
        more = self._suppressed.pop(kind, 0)
        self._last[kind] = now
        if more:
            text += f"  [+{more} more {kind} since last report]"
        self.unsent.append(text)
        print(text, file=self.stream or sys.stderr, flush=True)
        if self.sink is not None:
            self.sink(text)

    def fault(self, kind: str, message: str, *, always: bool = False) -> None:
        """Report a fault of the engine itself (a bad frame, a failed model): counted in
        ``faults``, not with rejected input; printed and sent like a rejection, rate-limited
        per kind the same way."""
        self.faults[kind] += 1
        self._emit(kind, f"sillage: {kind.replace('_', ' ')}: {message}", always)

    def take_unsent(self) -> list[str]:
        out = list(self.unsent)
        self.unsent.clear()
        return out

    @property
    def total(self) -> int:
        return sum(self.counts.values())

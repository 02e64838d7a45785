"""The adaptive prebuffer (``--prebuffer auto``): start small, grow after an underrun, shrink
again only after a quiet period that measured margin.

The prebuffer is the ring fill the decode worker keeps between itself and the audio callback;
it is most of the control → sound latency. Too small, and a late wake-up of the worker lets
the ring run dry (an underrun: a click). Too large, and every gesture arrives late.

- **Grow** at once after an underrun: ×2 (rounded up to a block), to the ceiling. The
  underruns of one hiccup come in a burst, so it grows at most once per ``burst_s``.
- **Shrink** one step (×¾, to the floor) only after ``quiet_s`` without an underrun *and* when
  the ring's low-water mark over that period (its fill just before each new frame is written,
  the closest it came to running dry) shows that the smaller prebuffer would still have kept
  at least one block in the ring. The period restarts after every change.

Pure bookkeeping: no clock of its own (callers pass ``now``), no allocation per frame, so the
decode worker can call :meth:`observe` on every frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GROW = 2.0
SHRINK = 0.75


@dataclass(frozen=True)
class LatencyMode:
    """What ``--latency MODE`` picks: the audio block, the prebuffer it starts at (auto grows
    it after underruns) and the most it may grow to, in frames at 48 kHz."""

    name: str
    blocksize: int
    prebuffer: int
    ceiling: int

    def describe(self, samplerate: int = 48000) -> str:
        ms = 1e3 / samplerate
        return (
            f"block {self.blocksize}, prebuffer {self.prebuffer} ({self.prebuffer * ms:.1f} ms) "
            f"growing after underruns to {self.ceiling} ({self.ceiling * ms:.0f} ms)"
        )


# low: block + prebuffer + one 256-sample frame ≈ 2.7 + 5.3 + 5.3 ms at 48 kHz (≤ 10 ms with
# a fast backend and a real-time worker, measured); normal: the old defaults' order of
# magnitude; safe: a busy machine or a big model (RAVE's 2048-sample frames).
LATENCY_MODES = {
    "low": LatencyMode("low", 128, 256, 2048),
    "normal": LatencyMode("normal", 256, 512, 4096),
    "safe": LatencyMode("safe", 512, 2048, 8192),
}


@dataclass(frozen=True)
class Change:
    """One change of the prebuffer (frames), and why."""

    old: int
    new: int
    reason: str


class AdaptivePrebuffer:
    """The ring target of ``--prebuffer auto``.

    Parameters
    ----------
    floor : int
        Never below this (the mode's start, at least one model frame).
    ceiling : int
        Never above this (the mode's ceiling, at most what the ring can hold).
    block : int
        The audio block: sizes are whole blocks, and the margin asked for is one block.
    quiet_s : float
        Underrun-free time before a shrink is considered.
    burst_s : float
        Underruns closer together than this grow the prebuffer once.
    """

    def __init__(
        self,
        floor: int,
        ceiling: int,
        block: int,
        *,
        quiet_s: float = 30.0,
        burst_s: float = 0.5,
    ) -> None:
        if block < 1:
            raise ValueError(f"block must be at least 1, got {block}")
        self.block = block
        self.quiet_s = quiet_s
        self.burst_s = burst_s
        self.floor = self._blocks(floor)
        self.ceiling = max(self.floor, ceiling - ceiling % block)
        self.value = self.floor
        self.changes: list[Change] = []
        self._since = -math.inf  # start of the current quiet period
        self._last_grow = -math.inf
        self._low_water = math.inf

    def _blocks(self, frames: float) -> int:
        """``frames`` rounded up to whole blocks."""
        return math.ceil(frames / self.block) * self.block

    def refit(self, floor: int, ceiling: int, now: float) -> Change | None:
        """New bounds (a model swap: its frame may be bigger); the value is kept inside."""
        self.floor = self._blocks(floor)
        self.ceiling = max(self.floor, ceiling - ceiling % self.block)
        new = min(max(self.value, self.floor), self.ceiling)
        return self._set(new, now, "the new model's frame") if new != self.value else None

    def start(self, now: float) -> None:
        """The stream started: the first quiet period begins."""
        self._since = now
        self._low_water = math.inf

    def observe(self, fill_before_write: int) -> None:
        """The ring fill just before a frame was written (decode worker, every frame)."""
        if fill_before_write < self._low_water:
            self._low_water = fill_before_write

    def underrun(self, now: float) -> Change | None:
        """The ring ran dry: grow (once per burst)."""
        self._since = now
        self._low_water = math.inf
        if now - self._last_grow < self.burst_s:
            return None
        self._last_grow = now
        new = min(self.ceiling, self._blocks(self.value * GROW))
        if new == self.value:
            return None
        return self._set(new, now, "after an underrun")

    def tick(self, now: float) -> Change | None:
        """Shrink one step when the last ``quiet_s`` had no underrun and enough margin."""
        if now - self._since < self.quiet_s or self.value <= self.floor:
            return None
        new = max(self.floor, self._blocks(self.value * SHRINK))
        if new >= self.value:
            new = max(self.floor, self.value - self.block)
        cut = self.value - new
        if self._low_water - cut < self.block:
            # it would have come within a block of running dry: not now; a new period
            self._since = now
            self._low_water = math.inf
            return None
        margin = int(self._low_water)
        return self._set(
            new, now, f"{self.quiet_s:.0f} s without underruns, low-water mark {margin} frames"
        )

    def _set(self, new: int, now: float, reason: str) -> Change:
        change = Change(self.value, new, reason)
        self.value = new
        self.changes.append(change)
        self._since = now
        self._low_water = math.inf
        return change

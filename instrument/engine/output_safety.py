"""Output safety: a bad frame never blasts the speakers, and never silences them for good.

Per frame (decode worker), in this order:
  1. :func:`finite` guards the model's output *before any stateful DSP*: a frame with NaN or
     inf never reaches a filter state (the decode loop replaces it, counts and reports it);
  2. the DC blocker (state kept across frames);
  3. a peak limiter with instant attack and smooth release keeps peaks under the ceiling; a
     final clip guarantees it.
Both stateful stages also check their own state and reset it when it is not finite (huge but
finite input can overflow it): a corrupted state lasts one frame, never the rest of the show.
Gain changes ramp across the frame so gain moves do not click.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import numpy as np


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def finite(frame: np.ndarray) -> bool:
    """True when every sample is finite. One reduction (NaN and inf survive a sum); a sum
    that overflows float32 is a frame no speaker should get either. Decode worker."""
    return math.isfinite(frame.sum())  # math on the scalar: a ufunc call costs more


def _filter_kernel() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """``(b, a, x, axis, zi) -> (y, zf)``: what :func:`scipy.signal.lfilter` calls for a filter
    with ``len(a) > 1``, called directly. lfilter's Python checks (array-API namespace, shapes,
    dtypes) cost as much as the filter on a 256-sample frame, and they only check what
    :class:`DCBlocker` fixed at set-up. Same kernel, same arguments: the same samples, bit
    for bit. Falls back to lfilter itself if scipy moves its private kernel."""
    try:
        from scipy.signal._sigtools import _linear_filter

        return cast(Callable[..., tuple[np.ndarray, np.ndarray]], _linear_filter)
    except ImportError:  # pragma: no cover - another scipy layout
        from scipy.signal import lfilter

        def kernel(
            b: np.ndarray, a: np.ndarray, x: np.ndarray, axis: int, zi: np.ndarray
        ) -> tuple[np.ndarray, np.ndarray]:
            y, zf = lfilter(b, a, x, axis=axis, zi=zi)
            return y, zf

        return kernel


class DCBlocker:
    """First-order high-pass (about 10 Hz) per channel, state kept across frames.

    Some models put out a DC offset (the default model does at its latent centre): it is
    inaudible but eats headroom and pushes speaker cones. scipy's lfilter carries the filter
    state between frames, so the result does not depend on how audio is cut into frames.
    """

    def __init__(self, *, samplerate: int, channels: int, cutoff_hz: float = 10.0) -> None:
        r = math.exp(-2 * math.pi * cutoff_hz / samplerate)
        self._b = np.array([1.0, -1.0], dtype=np.float64)
        self._a = np.array([1.0, -r], dtype=np.float64)
        self._zi = np.zeros((1, channels))
        self._lfilter = _filter_kernel()

    def process(self, frame: np.ndarray) -> np.ndarray:
        """Filter a frame (n, channels) and return a new float32 array. Decode worker.

        The caller guards the input (:func:`finite`); if the state still went non-finite
        (overflow), it is reset here and the frame comes back silent.
        """
        if self._zi.shape[1] != frame.shape[1]:
            self._zi = np.zeros((1, frame.shape[1]))
        y, self._zi = self._lfilter(self._b, self._a, frame, 0, self._zi)
        if not math.isfinite(self._zi.sum()):
            self.reset()
            return np.zeros(frame.shape, dtype=np.float32)
        return y.astype(np.float32)

    def reset(self) -> None:
        """Forget the filter state (after a bad frame, on panic)."""
        self._zi = np.zeros_like(self._zi)

    def copy(self) -> DCBlocker:
        """The same filter with a copy of its state (a crossfade runs the old model on it)."""
        other = object.__new__(DCBlocker)
        other._b, other._a, other._lfilter = self._b, self._a, self._lfilter
        other._zi = self._zi.copy()
        return other


class SafetyLimiter:
    """Peak limiter for frames of shape (n_samples, channels), float32.

    Parameters
    ----------
    samplerate : int
    ceiling_db : float
        Peaks never exceed this (dBFS).
    release_ms : float
        Time constant of the gain's return to 1 after a loud frame.
    """

    def __init__(self, *, samplerate: int, ceiling_db: float = -1.0, release_ms: float = 150.0):
        self.ceiling = db_to_gain(ceiling_db)
        self.release_s = release_ms / 1000.0
        self.samplerate = samplerate
        self.gain = 1.0
        self.bad_frames = 0
        self.limited_frames = 0
        self._abs = np.empty((0, 0), dtype=np.float32)  # |frame|, reused: no allocation per frame

    def process(self, frame: np.ndarray) -> np.ndarray:
        """Limit one frame in place and return it. Runs on the decode worker."""
        if not frame.size:
            return frame
        scratch = self._abs
        if scratch.shape != frame.shape or scratch.dtype != frame.dtype:
            scratch = self._abs = np.empty_like(frame)
        peak = float(np.abs(frame, out=scratch).max())  # NaN and inf propagate through max
        if not math.isfinite(peak):
            # last line of defence (the decode loop guards before the DC blocker): the gain
            # state is left as it was, so a bad frame never sticks in the limiter
            self.bad_frames += 1
            frame[:] = 0.0
            return frame
        if not math.isfinite(self.gain):
            self.reset()
        needed = min(1.0, self.ceiling / peak) if peak > 0 else 1.0
        if needed < self.gain:
            new = needed  # instant attack: the whole frame at the safe gain
            start = needed
        elif needed == self.gain:
            new = start = needed  # what the release below gives, without its exp()
        else:
            n = frame.shape[0]
            new = needed + (self.gain - needed) * math.exp(-n / self.samplerate / self.release_s)
            start = self.gain
        if new < 1.0 or start < 1.0:
            self.limited_frames += 1
            ramp = np.linspace(start, new, frame.shape[0], dtype=np.float32)
            frame *= ramp[:, None]
        self.gain = new
        if peak * max(start, new) > self.ceiling:  # only float rounding can get here
            np.clip(frame, -self.ceiling, self.ceiling, out=frame)
        return frame

    def reset(self) -> None:
        """Gain back to 1 (after a bad frame, on panic)."""
        self.gain = 1.0

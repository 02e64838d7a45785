"""Smoothing filters driven by event timestamps: the 1€ filter and a one-pole low-pass.

Both take the time of each sample (seconds, event time) rather than assuming a fixed rate:
sensors send irregularly (Wi-Fi jitter, dropped packets), and offline renders must give the same
result whatever the block size, so nothing here reads a wall clock.

The 1€ filter is written here rather than taken from a package: the reference implementations
(``OneEuroFilter`` on PyPI and Casiez's own) are scalar, per-sample Python with their own clock
handling; Sillage needs a vectorised, timestamp-driven version with a reset that the stale-input
logic can call, and it is twenty lines.

Reference: G. Casiez, N. Roussel, D. Vogel, "1€ Filter: A Simple Speed-based Low-pass Filter for
Noisy Input in Interactive Systems", CHI 2012.
"""

from __future__ import annotations

import math

import numpy as np

# Samples closer together than this are treated as simultaneous (some senders batch messages
# with identical timestamps); the filter then keeps the earlier rate estimate.
_MIN_DT_S = 1e-6


def smoothing_factor(dt_s: float, cutoff_hz: float) -> float:
    """Exponential smoothing factor of a first-order low-pass at ``cutoff_hz`` for a step ``dt_s``.

    Uses the exact discretisation ``1 - exp(-2π fc dt)`` (Casiez's paper uses the bilinear-like
    ``1 / (1 + τ/dt)``; both agree for ``dt << τ``, the exact one stays right for slow senders).
    """
    if cutoff_hz <= 0.0:
        return 0.0
    return 1.0 - math.exp(-2.0 * math.pi * cutoff_hz * dt_s)


class OnePole:
    """First-order low-pass with a time constant, for vectors of any shape.

    Parameters
    ----------
    cutoff_hz : float
        -3 dB cutoff; the time constant is ``1 / (2π cutoff_hz)``.
    """

    def __init__(self, cutoff_hz: float = 5.0) -> None:
        if not cutoff_hz > 0.0:
            raise ValueError(f"cutoff_hz must be > 0, got {cutoff_hz}")
        self.cutoff_hz = float(cutoff_hz)
        self._y: np.ndarray | None = None
        self._t = 0.0

    def reset(self) -> None:
        self._y = None

    def __call__(self, t: float, x: np.ndarray | float) -> np.ndarray | float:
        """Filter one sample ``x`` (any shape) taken at time ``t`` seconds. Runs on the decode worker."""
        if type(x) is float and (self._y is None or self._y.ndim == 0):
            y = x if self._y is None else float(self._y) + smoothing_factor(
                max(t - self._t, 0.0), self.cutoff_hz) * (x - float(self._y))  # fmt: skip
            self._y, self._t = np.asarray(y, dtype=np.float64), t
            return y
        x = np.asarray(x, dtype=np.float64)
        if self._y is None:
            self._y = x.copy()
        else:
            a = smoothing_factor(max(t - self._t, 0.0), self.cutoff_hz)
            self._y = self._y + a * (x - self._y)
        self._t = t
        return self._y


class OneEuro:
    """The 1€ filter: a low-pass whose cutoff rises with speed (less lag when moving fast).

    ``cutoff = min_cutoff_hz + beta * |dx/dt|`` with the derivative itself low-passed at
    ``d_cutoff_hz``. Tune as the paper says: ``beta = 0``, lower ``min_cutoff_hz`` until jitter
    at rest is gone; then raise ``beta`` until fast motion no longer lags. Vector inputs get one
    cutoff per component.

    Parameters
    ----------
    min_cutoff_hz : float
        Cutoff at rest (Hz).
    beta : float
        Speed coefficient (cutoff Hz per input unit per second).
    d_cutoff_hz : float
        Cutoff of the derivative estimate (Hz).
    """

    def __init__(
        self, min_cutoff_hz: float = 1.0, beta: float = 0.0, d_cutoff_hz: float = 1.0
    ) -> None:
        if not min_cutoff_hz > 0.0 or not d_cutoff_hz > 0.0 or not beta >= 0.0:
            raise ValueError(
                "1€ filter needs min_cutoff_hz > 0, d_cutoff_hz > 0 and beta >= 0, got "
                f"{min_cutoff_hz}, {d_cutoff_hz}, {beta}"
            )
        self.min_cutoff_hz = float(min_cutoff_hz)
        self.beta = float(beta)
        self.d_cutoff_hz = float(d_cutoff_hz)
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t = 0.0

    def __call__(self, t: float, x: np.ndarray | float) -> np.ndarray | float:
        """Filter one sample ``x`` (any shape) taken at time ``t`` seconds. Runs on the decode worker.

        A Python float in gives a float out (scalar path: numpy costs ~1 µs per operation on
        one number, and sensors call this hundreds of times a second per signal).
        """
        if type(x) is float:
            return self._scalar(t, x)
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._dx is None:
            self._x = x.copy()
            self._dx = np.zeros_like(x)
            self._t = t
            return self._x
        dt = t - self._t
        if dt < _MIN_DT_S:
            # Same timestamp: no rate information; follow with the previous cutoff's spirit
            # by treating it as the latest value of the same instant.
            return self._x
        a_d = smoothing_factor(dt, self.d_cutoff_hz)
        self._dx = self._dx + a_d * ((x - self._x) / dt - self._dx)
        cutoff = self.min_cutoff_hz + self.beta * np.abs(self._dx)
        a = 1.0 - np.exp(-2.0 * np.pi * cutoff * dt)
        self._x = self._x + a * (x - self._x)
        self._t = t
        return self._x

    def _scalar(self, t: float, x: float) -> float:
        if self._x is None or self._dx is None:
            self._x, self._dx, self._t = np.asarray(x, dtype=np.float64), np.zeros(()), t
            return x
        xp, dxp = float(self._x), float(self._dx)
        dt = t - self._t
        if dt < _MIN_DT_S:
            return xp
        dx = dxp + smoothing_factor(dt, self.d_cutoff_hz) * ((x - xp) / dt - dxp)
        cutoff = self.min_cutoff_hz + self.beta * abs(dx)
        y = xp + (1.0 - math.exp(-2.0 * math.pi * cutoff * dt)) * (x - xp)
        self._x, self._dx, self._t = np.asarray(y, dtype=np.float64), np.asarray(dx), t
        return y

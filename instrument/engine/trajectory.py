"""Latent trajectory: per-dimension smoothing, clamping, NaN guard, panic.

Runs on the decode worker, once per model frame. Plain numpy on arrays of a few dimensions:
a one-pole per dimension is one multiply-add, cheaper than any filter library call.
"""

from __future__ import annotations

import math

import numpy as np

from instrument.patch.contract import LATENT_LIMIT


class Trajectory:
    """Smooths the target latent towards the played latent.

    Parameters
    ----------
    latent_size : int
    frame_s : float
        Seconds per model frame (ratio / samplerate).
    limit : float
        Latent values are clamped to [-limit, limit].
    """

    def __init__(self, latent_size: int, frame_s: float, *, limit: float = LATENT_LIMIT) -> None:
        self.latent_size = latent_size
        self.frame_s = frame_s
        self.limit = limit
        self.z = np.zeros(latent_size)
        self.rejected = 0
        self._coef_cache: tuple[object, np.ndarray, np.ndarray] | None = None
        self._clamped = np.zeros(latent_size)  # the clamped target, reused every frame

    def _coef(self, smoothing_ms: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(a, 1 - a)`` per dimension, recomputed only when the smoothing changed (a float
        smoothing is compared as it is: no tuple built per frame)."""
        cache = self._coef_cache
        if cache is not None and type(smoothing_ms) is float and cache[0] == smoothing_ms:
            return cache[1], cache[2]
        key = smoothing_ms if np.isscalar(smoothing_ms) else tuple(np.asarray(smoothing_ms).ravel())
        if cache is not None and cache[0] == key:
            return cache[1], cache[2]
        tau_s = np.broadcast_to(np.asarray(smoothing_ms, dtype=float) / 1000.0, (self.latent_size,))
        with np.errstate(divide="ignore"):
            coef = np.where(tau_s > 0, np.exp(-self.frame_s / np.maximum(tau_s, 1e-12)), 0.0)
        self._coef_cache = (key, coef, 1.0 - coef)
        return coef, 1.0 - coef

    def step(self, target: np.ndarray, smoothing_ms: float | np.ndarray) -> np.ndarray:
        """Advance one frame towards ``target``; return the latent to decode. Decode worker.

        A target with NaN or inf is rejected whole (counted in ``rejected``): the latent
        holds where it was, so one bad value never jumps the sound.
        """
        if not math.isfinite(target.sum()):  # one reduction: any NaN/inf makes it non-finite
            self.rejected += 1
        else:
            # two ufuncs into a reused buffer: np.clip's wrapper costs more than the clamp
            t = self._clamped
            if t.shape != target.shape:
                t = self._clamped = np.empty(target.shape)
            np.minimum(target, self.limit, out=t)
            np.maximum(t, -self.limit, out=t)
            a, one_minus_a = self._coef(smoothing_ms)
            # a * z + (1 - a) * t, the same roundings, one new array (z is handed out: callers
            # may keep it, so it is never written in place)
            z = a * self.z
            t *= one_minus_a
            z += t
            self.z = z
        return self.z

    def jump(self, z: np.ndarray) -> None:
        """Set the played latent directly (after a panic fade-out, when nothing is heard)."""
        self.z = np.clip(np.asarray(z, dtype=float), -self.limit, self.limit)

    def set_frame(self, frame_s: float) -> None:
        """A model with another frame length: the smoothing coefficients follow it."""
        if frame_s != self.frame_s:
            self.frame_s = frame_s
            self._coef_cache = None

    def resize(self, latent_size: int) -> None:
        """A model with another latent size: keep the dimensions both share."""
        z = np.zeros(latent_size)
        n = min(latent_size, self.latent_size)
        z[:n] = self.z[:n]
        self.z = z
        self.latent_size = latent_size
        self._coef_cache = None
        self._clamped = np.zeros(latent_size)

"""Gesture features of one motion sensor: intensity, kicks, orientation, band-limited acceleration.

:class:`MotionFeatures` takes the decoded fields of :mod:`mappings.imu` (one message at a time,
with its timestamp) and returns the features that message updates, as scalars:

- ``intensity`` (and ``intensity_x|y|z``): as the Gestural Sound Toolkit / CoMo / lfo-motion
  ``Intensity`` operator defines it — per axis, the absolute derivative of the acceleration (g),
  leaky-integrated (``feedback`` 0.7), times ``gain`` 0.07, squared; the norm is the sum over
  axes. Here the derivative is taken per second and the integrator's feedback is defined per
  ``period_s`` (20 ms, CoMo's resampling period) and rescaled to the actual time step, so the
  value does not depend on the sensor's rate. Scale: 0 at rest, about 0.01 for a brisk 1 g
  shake at 4 Hz, 0.1 and above for violent moves (patches map ``range = [0, 0.05]``).
- ``kick``: a decaying envelope (0..1) fired when intensity jumps above its running median by
  ``kick_threshold`` (lfo-motion ``Kick``), at most one per ``kick_min_interval_s``.
- ``yaw``, ``pitch``, ``roll`` (deg): from the quaternion when the sensor sends one (else
  from its Euler angles), and ``tilt_x``, ``tilt_y`` (-1..1) from the gravity direction (or the
  low-passed acceleration when no gravity is sent).
- ``band_x|y|z`` and ``band``: acceleration band-limited between ``band_hz`` (first-order
  high-pass removes gravity and posture, first-order low-pass removes sensor noise) and its norm.
- ``accel_x|y|z``, ``gyro_x|y|z``, ``rotation`` (gyro norm, deg/s), ``button``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mappings.filters import smoothing_factor
from mappings.imu import Fields

FEATURES = (
    "intensity", "intensity_x", "intensity_y", "intensity_z", "kick",
    "yaw", "pitch", "roll", "tilt_x", "tilt_y",
    "band", "band_x", "band_y", "band_z",
    "accel_x", "accel_y", "accel_z", "gyro_x", "gyro_y", "gyro_z", "rotation", "button",
)  # fmt: skip


@dataclass
class MotionParams:
    feedback: float = 0.7
    gain: float = 0.07
    period_s: float = 0.02
    kick_threshold: float = 0.01
    kick_median_s: float = 0.1
    kick_min_interval_s: float = 0.2
    kick_decay_s: float = 0.15
    band_hz: tuple[float, float] = (0.5, 10.0)


def quat_to_euler(q: np.ndarray) -> tuple[float, float, float]:
    """Unit quaternion (w, x, y, z) to (yaw, pitch, roll) in degrees (ZYX / aerospace order).

    Parameters
    ----------
    q : ndarray, shape (4,)
    """
    w, x, y, z = q.tolist()
    n = math.sqrt(w * w + x * x + y * y + z * z)
    if n < 1e-9:
        return 0.0, 0.0, 0.0
    w, x, y, z = w / n, x / n, y / n, z / n
    yaw = math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    pitch = math.asin(min(1.0, max(-1.0, 2.0 * (w * y - z * x))))
    roll = math.atan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y))
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


class MotionFeatures:
    """Feature state of one sensor (one per sensor id: several dancers, several wrists)."""

    def __init__(self, params: MotionParams | None = None) -> None:
        self.p = params or MotionParams()
        self.reset()

    def reset(self) -> None:
        self._t_acc: float | None = None
        self._acc = np.zeros(3)
        self._mem = np.zeros(3)
        self._hp_in = np.zeros(3)
        self._hp = np.zeros(3)
        self._band = np.zeros(3)
        self._grav_lp: np.ndarray | None = None
        self._has_gravity = False
        self._hist: list[tuple[float, float]] = []
        self._last_kick = -math.inf
        self._kick = 0.0
        self._t_kick = 0.0

    def update(self, t: float, fields: Fields) -> dict[str, float]:
        """Consume one decoded message taken at time ``t`` (s); return the features it updates.

        Runs on the decode worker.
        """
        out: dict[str, float] = {}
        if "accel" in fields:
            self._accel(t, fields["accel"], out)
        if "gyro" in fields:
            g = fields["gyro"]
            out.update(gyro_x=g[0], gyro_y=g[1], gyro_z=g[2], rotation=math.hypot(g[0], g[1], g[2]))
        if "quat" in fields:
            out["yaw"], out["pitch"], out["roll"] = quat_to_euler(fields["quat"])
        elif "euler" in fields:
            e = fields["euler"]
            out.update(yaw=e[0], pitch=e[1], roll=e[2])
        if "gravity" in fields:
            self._has_gravity = True
            self._tilt(fields["gravity"], out)
        if "button" in fields:
            out["button"] = 1.0 if fields["button"][0] > 0.5 else 0.0
        return {k: float(v) for k, v in out.items()}

    def _accel(self, t: float, a: np.ndarray, out: dict[str, float]) -> None:
        p = self.p
        out.update(accel_x=a[0], accel_y=a[1], accel_z=a[2])
        if self._t_acc is None:
            self._t_acc, self._acc, self._hp_in = t, a.copy(), a.copy()
            self._grav_lp = a.copy()
            out.update(intensity=0.0, intensity_x=0.0, intensity_y=0.0, intensity_z=0.0)
            out.update(kick=0.0, band=0.0, band_x=0.0, band_y=0.0, band_z=0.0)
            if not self._has_gravity:
                self._tilt(a, out)
            return
        dt = t - self._t_acc
        if dt <= 1e-6:
            return  # duplicate timestamp: no derivative to take
        # Intensity: leaky integrator of |da/dt|, made rate-independent (see module doc).
        r = p.feedback ** (dt / p.period_s)
        inflow = np.abs(a - self._acc) / dt * p.period_s * (1.0 - r) / (1.0 - p.feedback)
        self._mem = r * self._mem + inflow
        per_axis = (self._mem * p.gain) ** 2
        intensity = float(per_axis.sum())
        out.update(intensity=intensity, intensity_x=per_axis[0], intensity_y=per_axis[1])
        out["intensity_z"] = per_axis[2]
        out["kick"] = self._kick_step(t, intensity)
        # Band-limited acceleration: first-order high-pass then low-pass.
        lo_hz, hi_hz = p.band_hz
        k_hp = math.exp(-2.0 * math.pi * lo_hz * dt)
        self._hp = k_hp * (self._hp + a - self._hp_in)
        self._hp_in = a.copy()
        self._band += smoothing_factor(dt, hi_hz) * (self._hp - self._band)
        out.update(band_x=self._band[0], band_y=self._band[1], band_z=self._band[2])
        out["band"] = math.hypot(*self._band.tolist())
        # Gravity estimate for tilt when the sensor sends no gravity of its own.
        assert self._grav_lp is not None
        self._grav_lp += smoothing_factor(dt, 2.0) * (a - self._grav_lp)
        if not self._has_gravity:
            self._tilt(self._grav_lp, out)
        self._t_acc, self._acc = t, a.copy()

    def _kick_step(self, t: float, intensity: float) -> float:
        p = self.p
        hist = self._hist
        hist.append((t, intensity))
        while hist and hist[0][0] < t - p.kick_median_s:
            hist.pop(0)
        values = sorted(v for _, v in hist)
        mid = len(values) // 2
        median = values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])
        self._kick *= math.exp(-(t - self._t_kick) / p.kick_decay_s)
        self._t_kick = t
        if intensity - median > p.kick_threshold and t - self._last_kick >= p.kick_min_interval_s:
            self._last_kick = t
            self._kick = 1.0
        return self._kick

    @staticmethod
    def _tilt(g: np.ndarray, out: dict[str, float]) -> None:
        gx, gy, gz = g.tolist()
        n = math.hypot(gx, gy, gz)
        if n > 1e-6:
            out["tilt_x"] = min(1.0, max(-1.0, gx / n))
            out["tilt_y"] = min(1.0, max(-1.0, gy / n))

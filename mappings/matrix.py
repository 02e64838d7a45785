"""Linear mappings to latent space around a centre (IRCAM "I1") and onto a loop (IRCAM "I2").

Both are functions of conditioned features ``x`` (shape (n_features,)) and return a latent
target; the engine then scales it around the same centre (``/sillage/scale``), clamps and
smooths it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def build_matrix(
    rows: Sequence[Sequence[float]] | None, n_features: int, latent_size: int
) -> np.ndarray:
    """A (n_features, latent_size) matrix from a patch's rows.

    Rows shorter than ``latent_size`` are padded with zeros and longer ones cut (a patch written
    for an 8-dimension model still plays a 4-dimension one). No rows: feature ``k`` drives latent
    dimension ``k mod latent_size`` with gain 1.
    """
    m = np.zeros((n_features, latent_size))
    if rows is None:
        for k in range(n_features):
            m[k, k % latent_size] = 1.0
        return m
    if len(rows) != n_features:
        raise ValueError(
            f"matrix has {len(rows)} rows but the mapping has {n_features} inputs; one row per input"
        )
    for k, row in enumerate(rows):
        values = np.asarray(row, dtype=np.float64).reshape(-1)[:latent_size]
        m[k, : len(values)] = values
    return m


class MatrixMapping:
    """``z = centre + (x - x_rest) @ matrix``: features move the latent around a settable centre.

    Parameters
    ----------
    matrix : ndarray, shape (n_features, latent_size)
    x_rest : ndarray, shape (n_features,)
        Feature values that leave the latent at the centre (the conditioners' rest values).
    """

    kind = "matrix"

    def __init__(self, matrix: np.ndarray, x_rest: np.ndarray | None = None) -> None:
        self.matrix = np.asarray(matrix, dtype=np.float64)
        self.x_rest = (
            np.zeros(self.matrix.shape[0])
            if x_rest is None
            else np.asarray(x_rest, dtype=np.float64)
        )

    def __call__(self, x: np.ndarray, centre: np.ndarray) -> np.ndarray:
        """Target latent, shape (latent_size,). Runs on the decode worker."""
        return centre + (x - self.x_rest) @ self.matrix


class LoopMapping:
    """Offsets added to the latent trajectory of an encoded audio loop (IRCAM "I2").

    The loop plays on its own (frame ``floor(phase)`` of the trajectory, wrapping); features add
    ``(x - x_rest) @ matrix`` to it, and optionally one feature drives the playback speed.

    Parameters
    ----------
    trajectory : ndarray, shape (latent_size, n_frames)
        The loop's latents (from the model's ``encode``).
    frame_rate_hz : float
        Latent frames per second of the trajectory (samplerate / ratio).
    matrix : ndarray, shape (n_features, latent_size)
    x_rest : ndarray, shape (n_features,)
    speed_input : int or None
        Index of the feature that sets playback speed (speed = feature value); None: speed 1.
    """

    kind = "loop"

    def __init__(
        self, trajectory: np.ndarray, frame_rate_hz: float, matrix: np.ndarray,
        x_rest: np.ndarray | None = None, speed_input: int | None = None,
    ) -> None:  # fmt: skip
        self.trajectory = np.asarray(trajectory, dtype=np.float64)
        if self.trajectory.ndim != 2 or self.trajectory.shape[1] < 1:
            raise ValueError(
                f"loop trajectory must be (latent_size, n_frames), got {self.trajectory.shape}"
            )
        self.frame_rate_hz = float(frame_rate_hz)
        self.offsets = MatrixMapping(matrix, x_rest)
        self.speed_input = speed_input
        self.reset()

    def reset(self) -> None:
        self._phase = 0.0
        self._t: float | None = None

    def __call__(self, t: float, x: np.ndarray, centre: np.ndarray) -> np.ndarray:
        """Target latent at time ``t``, shape (latent_size,). Runs on the decode worker."""
        dt = 0.0 if self._t is None else max(t - self._t, 0.0)
        self._t = t
        speed = 1.0 if self.speed_input is None else float(x[self.speed_input])
        n = self.trajectory.shape[1]
        self._phase = (self._phase + dt * self.frame_rate_hz * speed) % n
        i0 = int(self._phase)
        frac = self._phase - i0
        # Linear interpolation between frames: speeds other than 1 stay smooth.
        base = (1.0 - frac) * self.trajectory[:, i0] + frac * self.trajectory[:, (i0 + 1) % n]
        return base + (x - self.offsets.x_rest) @ self.offsets.matrix

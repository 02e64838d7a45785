"""Latent transforms between ``encode`` and ``decode``: what the instrument does to what it hears.

Once per model frame the engine encodes one frame of the input and hands the encoded latent
``z_in`` and the controllers' latent ``z_ctrl`` (smoothed by the trajectory) to
:class:`LatentTransform`, which returns the latent to decode. Per dimension ``d``::

    raw      = z_in, NaN/inf replaced by the last good value (counted)
    held     = raw unless frozen (a frozen dimension keeps the value it had when frozen)
    input    = scale[d] * held + bias[d]            (RAVE users' bias and scale in Max)
             + pitch_scale * transpose_st / 12       (on the card's pitch dimension only)
             + noise[d] * N(0, 1)                    (seeded: offline renders repeat)
    z        = z_ctrl + mix[d] * (input - z_ctrl)    (0 = controllers only, 1 = input only)

then clamped to ``[-limit, limit]``. ``mix`` glides to a new value with a one-pole
(``mix_smoothing_ms``), so a fader moved by steps does not click.

The ``[listen]`` table of a patch sets the same values (:func:`parse_listen`)::

    [listen]
    mix = 1.0             # a number (every dimension) or a list, one per dimension
    bias = 0.0            # number or list
    scale = 1.0           # number or list
    freeze = false        # bool or list of bools
    noise = 0.0           # number or list: standard deviation added, latent units
    transpose_st = 0.0    # semitones on the pitch dimension (needs the card's [latent] pitch)
    seed = 0              # the noise generator's seed
    mix_smoothing_ms = 30.0

Pure numpy and deterministic: the same inputs, settings and seed give the same latents.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LISTEN_KEYS = (
    "mix",
    "bias",
    "scale",
    "freeze",
    "noise",
    "transpose_st",
    "seed",
    "mix_smoothing_ms",
)
TRANSPOSE_LIMIT_ST = 48.0


@dataclass
class ListenSettings:
    """A parsed ``[listen]`` table: only the keys it gives (None = leave as is)."""

    mix: np.ndarray | None = None
    bias: np.ndarray | None = None
    scale: np.ndarray | None = None
    freeze: np.ndarray | None = None
    noise: np.ndarray | None = None
    transpose_st: float | None = None
    seed: int | None = None
    mix_smoothing_ms: float | None = None
    given: tuple[str, ...] = field(default_factory=tuple)


def _per_dim(key: str, value: Any, latent_size: int, *, lo: float, hi: float) -> np.ndarray:
    where = f"[listen] {key}"
    if isinstance(value, list):
        if len(value) > latent_size or not value:
            raise ValueError(
                f"{where} has {len(value)} values; give 1..{latent_size} (one per latent dimension) "
                "or a single number for all"
            )
        values = value
    else:
        values = [value]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{where} = {value!r}: expected finite numbers")
        if not lo <= v <= hi:
            raise ValueError(f"{where} = {v!r} is outside [{lo:g}, {hi:g}]")
        out.append(float(v))
    if isinstance(value, list):
        arr = np.full(latent_size, np.nan)
        arr[: len(out)] = out
        return arr  # NaN: dimensions the list does not reach keep their value
    return np.full(latent_size, out[0])


def parse_listen(table: Mapping[str, Any], latent_size: int) -> ListenSettings:
    """Check a patch's ``[listen]`` table for a model of ``latent_size`` dimensions.

    Raises
    ------
    ValueError
        An unknown key, a value of the wrong type or out of range, a list longer than the
        latent; the message names the key and the rule.
    """
    if not isinstance(table, Mapping):
        raise ValueError(f"[listen] must be a table, got {type(table).__name__}")
    unknown = sorted(set(table) - set(LISTEN_KEYS))
    if unknown:
        raise ValueError(f"[listen] unknown key(s) {unknown}; known: {', '.join(LISTEN_KEYS)}")
    s = ListenSettings(given=tuple(k for k in LISTEN_KEYS if k in table))
    if "mix" in table:
        s.mix = _per_dim("mix", table["mix"], latent_size, lo=0.0, hi=1.0)
    if "bias" in table:
        s.bias = _per_dim("bias", table["bias"], latent_size, lo=-8.0, hi=8.0)
    if "scale" in table:
        s.scale = _per_dim("scale", table["scale"], latent_size, lo=-8.0, hi=8.0)
    if "noise" in table:
        s.noise = _per_dim("noise", table["noise"], latent_size, lo=0.0, hi=8.0)
    if "freeze" in table:
        f = table["freeze"]
        flags = f if isinstance(f, list) else [f]
        if not flags or len(flags) > latent_size or not all(isinstance(v, bool) for v in flags):
            raise ValueError(
                f"[listen] freeze = {f!r}: expected true/false or a list of 1..{latent_size} of them"
            )
        arr = np.full(latent_size, np.nan)
        if isinstance(f, list):
            arr[: len(flags)] = flags
        else:
            arr[:] = float(f)
        s.freeze = arr
    if "transpose_st" in table:
        v = table["transpose_st"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"[listen] transpose_st = {v!r}: expected a number of semitones")
        if abs(v) > TRANSPOSE_LIMIT_ST:
            raise ValueError(
                f"[listen] transpose_st = {v} is outside [-{TRANSPOSE_LIMIT_ST:g}, {TRANSPOSE_LIMIT_ST:g}]"
            )
        s.transpose_st = float(v)
    if "seed" in table:
        v = table["seed"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"[listen] seed = {v!r}: expected a non-negative integer")
        s.seed = v
    if "mix_smoothing_ms" in table:
        v = table["mix_smoothing_ms"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 10000:
            raise ValueError(f"[listen] mix_smoothing_ms = {v!r}: expected 0..10000 ms")
        s.mix_smoothing_ms = float(v)
    return s


class LatentTransform:
    """The input latent, transformed and mixed with the controllers' latent. See the module
    docstring.

    Parameters
    ----------
    latent_size : int
    frame_s : float
        Seconds per model frame (for the mix glide).
    pitch_dim, pitch_scale : int or None, float or None
        The card's pitch dimension and its latent units per octave; transpose needs both.
    seed : int
        Seed of the noise generator.
    limit : float
        The result is clamped to ``[-limit, limit]`` (the engine's latent limit).
    """

    def __init__(
        self,
        latent_size: int,
        *,
        frame_s: float,
        pitch_dim: int | None = None,
        pitch_scale: float | None = None,
        seed: int = 0,
        limit: float = 8.0,
    ) -> None:
        self.latent_size = int(latent_size)
        self.frame_s = float(frame_s)
        self.pitch_dim = pitch_dim if pitch_dim is not None and pitch_dim < latent_size else None
        self.pitch_scale = pitch_scale
        self.limit = float(limit)
        n = self.latent_size
        self.mix_target = np.zeros(n)
        self.mix = np.zeros(n)
        self.bias = np.zeros(n)
        self.scale = np.ones(n)
        self.freeze = np.zeros(n, dtype=bool)
        self.noise = np.zeros(n)
        self.transpose_st = 0.0
        self.mix_smoothing_ms = 30.0
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)
        self._held = np.zeros(n)
        self._have_input = False
        self.rejected = 0  # frames whose encoded latent had NaN/inf

    @property
    def can_transpose(self) -> bool:
        return self.pitch_dim is not None and self.pitch_scale is not None

    # --- settings (decode worker: OSC handlers, patch loads) ----------------------------
    def _set(self, arr: np.ndarray, value: float | np.ndarray, index: int | None) -> None:
        if index is None:
            v = np.asarray(value, dtype=float)
            if v.ndim == 0:
                arr[:] = v
            else:
                n = min(v.size, self.latent_size)
                arr[:n] = v[:n]
        else:
            arr[index] = value

    def set_mix(self, value: float | np.ndarray, index: int | None = None) -> None:
        self._set(self.mix_target, value, index)

    def set_bias(self, value: float | np.ndarray, index: int | None = None) -> None:
        self._set(self.bias, value, index)

    def set_scale(self, value: float | np.ndarray, index: int | None = None) -> None:
        self._set(self.scale, value, index)

    def set_noise(self, value: float | np.ndarray, index: int | None = None) -> None:
        self._set(self.noise, value, index)

    def set_freeze(self, on: bool | np.ndarray, index: int | None = None) -> None:
        self._set(self.freeze, on, index)

    def set_transpose(self, semitones: float) -> None:
        """Raises ValueError when the model declares no pitch dimension."""
        if not self.can_transpose:
            raise ValueError(
                "this model's card declares no pitch dimension ([latent] pitch_dim and "
                "pitch_scale): transpose needs one"
            )
        self.transpose_st = float(semitones)

    def configure(self, s: ListenSettings) -> None:
        """Apply a parsed ``[listen]`` table; NaN entries of a list leave that dimension."""
        for name, arr in (
            ("mix", self.mix_target),
            ("bias", self.bias),
            ("scale", self.scale),
            ("noise", self.noise),
        ):
            v = getattr(s, name)
            if v is not None:
                keep = np.isnan(v)
                arr[~keep] = v[~keep]
        if s.freeze is not None:
            keep = np.isnan(s.freeze)
            self.freeze[~keep] = s.freeze[~keep] > 0.5
        if s.mix_smoothing_ms is not None:
            self.mix_smoothing_ms = s.mix_smoothing_ms
        if s.seed is not None and s.seed != self.seed:
            self.seed = s.seed
            self._rng = np.random.default_rng(s.seed)
        if s.transpose_st is not None:
            self.set_transpose(s.transpose_st)

    def jump_mix(self) -> None:
        """Take the mix target at once (at start: no glide from 0)."""
        self.mix[:] = self.mix_target

    # --- per frame ----------------------------------------------------------------------
    def input_latent(self, z_in: np.ndarray) -> np.ndarray:
        """The transformed input latent, shape (latent_size,). Decode worker, once per frame."""
        raw = np.asarray(z_in, dtype=float)
        bad = ~np.isfinite(raw)
        if bad.any():
            self.rejected += 1
            raw = np.where(bad, self._held, raw)
        if not self._have_input:
            self._held = raw.copy()
            self._have_input = True
        self._held = np.where(self.freeze, self._held, raw)
        z = self.scale * self._held + self.bias
        if self.transpose_st and self.pitch_dim is not None and self.pitch_scale is not None:
            z[self.pitch_dim] += self.pitch_scale * self.transpose_st / 12.0
        draw = self._rng.standard_normal(self.latent_size)  # drawn every frame: repeatable
        if self.noise.any():
            z += self.noise * draw
        return z

    def __call__(self, z_in: np.ndarray | None, z_ctrl: np.ndarray) -> np.ndarray:
        """The latent to decode, shape (latent_size,): ``z_ctrl`` mixed with the transformed
        ``z_in`` (``z_ctrl`` alone while nothing was heard yet). Decode worker."""
        tau = self.mix_smoothing_ms / 1000.0
        a = math.exp(-self.frame_s / tau) if tau > 0 else 0.0
        self.mix = a * self.mix + (1.0 - a) * self.mix_target
        if z_in is None:
            return z_ctrl
        z = z_ctrl + self.mix * (self.input_latent(z_in) - z_ctrl)
        return np.maximum(np.minimum(z, self.limit), -self.limit)

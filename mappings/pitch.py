"""Pitch in tune: a scale quantiser, and conversions between MIDI notes, Hz and a pitch latent.

Pitches are MIDI note numbers as floats (69.0 = A4, 60.5 = a quarter tone above middle C),
the unit a keyboard, a sensor mapping and the quantiser share. ``tuning_hz`` is the frequency of
A4 (MIDI 69). A model's pitch latent is ``z = pitch_scale * log2(f0 / pitch_ref_hz)`` (read from
its card's ``[latent]`` table): :func:`midi_to_latent` and :func:`latent_to_midi` convert.

:class:`Scale` is the pure part (nearest degree, vectorised); :class:`Quantiser` adds the state
a sensor needs so it does not chatter between two notes: hysteresis (the input must go past
the midpoint between two degrees by ``hysteresis_cents`` before the note changes) and a snap
``strength`` (1 = hard steps, 0 = the input untouched, in between = pulled towards the notes,
which keeps a sensor's vibrato audible). Glide between the notes belongs to whatever smooths
the latent afterwards (the engine's smoothing or the keyboard voice).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

A4_MIDI = 69.0

#: Scale degrees in cents above the root, within one octave.
SCALES: dict[str, tuple[float, ...]] = {
    "chromatic": tuple(100.0 * k for k in range(12)),
    "major": (0.0, 200.0, 400.0, 500.0, 700.0, 900.0, 1100.0),
    "minor": (0.0, 200.0, 300.0, 500.0, 700.0, 800.0, 1000.0),
    "harmonic_minor": (0.0, 200.0, 300.0, 500.0, 700.0, 800.0, 1100.0),
    "pentatonic_major": (0.0, 200.0, 400.0, 700.0, 900.0),
    "pentatonic_minor": (0.0, 300.0, 500.0, 700.0, 1000.0),
}
SCALES["pentatonic"] = SCALES["pentatonic_major"]

_NOTE_NAMES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_NOTE_RE = re.compile(r"^([a-gA-G])([#b♯♭]?)(-?\d+)?$")


def note_number(root: str | float) -> float:
    """A root as a MIDI number: ``60``, ``"C"`` (pitch class 0), ``"F#"``, ``"Bb3"`` (58).

    Only the pitch class of the root matters to a scale; an octave number is accepted and kept.
    """
    if isinstance(root, (int, float)) and not isinstance(root, bool):
        if not math.isfinite(root):
            raise ValueError(f"root must be finite, got {root}")
        return float(root)
    m = _NOTE_RE.match(str(root).strip())
    if m is None:
        raise ValueError(
            f"root {root!r} is not a note; use a MIDI number (60) or a name like 'C', 'F#', 'Bb3'"
        )
    pc = _NOTE_NAMES[m.group(1).lower()] + {"#": 1, "♯": 1, "b": -1, "♭": -1}.get(m.group(2), 0)
    octave = int(m.group(3)) if m.group(3) is not None else -1
    return float(pc + 12 * (octave + 1))


def midi_to_hz(midi: np.ndarray | float, *, tuning_hz: float = 440.0) -> np.ndarray | float:
    """MIDI note (float) to Hz, A4 = ``tuning_hz``."""
    return tuning_hz * 2.0 ** ((np.asarray(midi, dtype=np.float64) - A4_MIDI) / 12.0)


def hz_to_midi(hz: np.ndarray | float, *, tuning_hz: float = 440.0) -> np.ndarray | float:
    """Hz to MIDI note (float), A4 = ``tuning_hz``."""
    return A4_MIDI + 12.0 * np.log2(np.asarray(hz, dtype=np.float64) / tuning_hz)


def midi_to_latent(
    midi: np.ndarray | float,
    *,
    pitch_scale: float = 1.0,
    pitch_ref_hz: float = 440.0,
    tuning_hz: float = 440.0,
) -> np.ndarray | float:
    """MIDI note (float) to a model's pitch latent ``pitch_scale * log2(f0 / pitch_ref_hz)``."""
    octaves = (np.asarray(midi, dtype=np.float64) - A4_MIDI) / 12.0
    return pitch_scale * (octaves + math.log2(tuning_hz / pitch_ref_hz))


def latent_to_midi(
    z: np.ndarray | float,
    *,
    pitch_scale: float = 1.0,
    pitch_ref_hz: float = 440.0,
    tuning_hz: float = 440.0,
) -> np.ndarray | float:
    """A model's pitch latent back to a MIDI note (float); inverse of :func:`midi_to_latent`."""
    if pitch_scale == 0:
        raise ValueError("pitch_scale must not be 0")
    octaves = np.asarray(z, dtype=np.float64) / pitch_scale - math.log2(tuning_hz / pitch_ref_hz)
    return A4_MIDI + 12.0 * octaves


class Scale:
    """Degrees (cents above the root) repeating every ``period_cents``.

    Parameters
    ----------
    degrees_cents : sequence of float
        In any order; reduced modulo the period (0 is added if missing: the root is a degree).
    root : float or str
        A MIDI number or a note name (:func:`note_number`); only its pitch class matters.
    period_cents : float
        1200 (an octave) for every named scale; other values give non-octave scales.
    """

    def __init__(
        self,
        degrees_cents: Sequence[float],
        *,
        root: float | str = 0.0,
        period_cents: float = 1200.0,
    ) -> None:
        if not period_cents > 0 or not math.isfinite(period_cents):
            raise ValueError(f"period_cents must be a positive number, got {period_cents}")
        d = np.asarray(list(degrees_cents), dtype=np.float64).reshape(-1)
        if d.size == 0 or not np.isfinite(d).all():
            raise ValueError(f"scale degrees must be finite cents, got {list(degrees_cents)!r}")
        d = np.unique(np.append(np.mod(d, period_cents), 0.0))
        self.degrees_cents = d
        self.period_cents = float(period_cents)
        self.root = note_number(root)
        # Degrees one period either side: the nearest degree of any input is among these.
        self._ladder = np.concatenate([d - period_cents, d, d + period_cents, [2 * period_cents]])

    @classmethod
    def named(cls, name: str, *, root: float | str = 0.0) -> Scale:
        """A scale from :data:`SCALES` (``chromatic``, ``major``, ``minor``, ``pentatonic``...)."""
        key = name.strip().lower().replace(" ", "_").replace("-", "_")
        if key not in SCALES:
            raise ValueError(
                f"unknown scale {name!r}; choose one of {', '.join(SCALES)} or a cents list"
            )
        return cls(SCALES[key], root=root)

    @classmethod
    def from_spec(cls, spec: str | Sequence[float], *, root: float | str = 0.0) -> Scale:
        """A name or a custom cents list (as written in a patch)."""
        if isinstance(spec, str):
            return cls.named(spec, root=root)
        return cls(spec, root=root)

    def nearest(self, midi: np.ndarray | float) -> np.ndarray:
        """The nearest scale degree to each pitch, as MIDI floats (same shape; ties go down)."""
        x = np.asarray(midi, dtype=np.float64)
        cents = (x - self.root) * 100.0
        k = np.floor(cents / self.period_cents)
        rel = cents - k * self.period_cents
        i = np.clip(np.searchsorted(self._ladder, rel), 1, len(self._ladder) - 1)
        lo, hi = self._ladder[i - 1], self._ladder[i]
        best = np.where(rel - lo <= hi - rel, lo, hi)
        return self.root + (k * self.period_cents + best) / 100.0


class Quantiser:
    """Continuous pitch in, a pitch in the scale out, without chatter (stateful, per frame).

    Parameters
    ----------
    scale : Scale
    hysteresis_cents : float
        Once on a note, the input must go this far past the midpoint between it and another
        degree before the note changes (0: plain nearest degree).
    strength : float in [0, 1]
        1: output the note; 0: output the input; between: ``input + strength * (note - input)``.

    Runs on the decode worker: ``__call__`` allocates nothing but a float.
    """

    def __init__(
        self, scale: Scale, *, hysteresis_cents: float = 0.0, strength: float = 1.0
    ) -> None:
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        if not hysteresis_cents >= 0.0:
            raise ValueError(f"hysteresis_cents must be >= 0, got {hysteresis_cents}")
        self.scale = scale
        self.hysteresis = hysteresis_cents / 100.0
        self.strength = float(strength)
        self.note: float | None = None

    def reset(self) -> None:
        self.note = None

    def __call__(self, midi: float) -> float:
        """Quantised pitch (MIDI float) for input ``midi``; a NaN input returns the held note."""
        if not math.isfinite(midi):
            return self.note if self.note is not None else float("nan")
        nearest = float(self.scale.nearest(midi))
        # Closer to the new degree than to the held one by 2h = past their midpoint by h.
        if self.note is None or abs(midi - self.note) - abs(midi - nearest) > 2 * self.hysteresis:
            self.note = nearest
        return midi + self.strength * (self.note - midi)


class SensorPitch:
    """A conditioned control signal to a pitch in a scale (a patch's ``[pitch]`` table).

    ``span = (x_low, x_high)`` of the signal covers ``notes = (low, high)`` linearly (clipped
    at the ends), then :class:`Quantiser` puts it in the scale.

    Parameters
    ----------
    span : (float, float)
        Signal values at the low and the high note (may be decreasing).
    notes : (float or str, float or str)
        Low and high note, MIDI numbers or names (:func:`note_number`).
    quantiser : Quantiser or None
        None: continuous pitch (no scale).
    """

    def __init__(
        self,
        span: Sequence[float],
        notes: Sequence[float | str],
        quantiser: Quantiser | None = None,
    ) -> None:
        if len(span) != 2 or len(notes) != 2:
            raise ValueError(f"span and notes take two values each, got {span!r} and {notes!r}")
        self.x0, self.x1 = float(span[0]), float(span[1])
        if not (math.isfinite(self.x0) and math.isfinite(self.x1)) or self.x0 == self.x1:
            raise ValueError(f"span must be two different finite numbers, got {span!r}")
        self.lo, self.hi = note_number(notes[0]), note_number(notes[1])
        self.quantiser = quantiser

    @classmethod
    def from_table(cls, table: dict) -> SensorPitch:
        """From a patch's ``[pitch]`` keys: span, notes, scale, root, hysteresis_cents,
        strength (``scale`` absent or ``"none"``: continuous)."""
        spec = table.get("scale", "chromatic")
        q = None
        if spec != "none":
            scale = Scale.from_spec(spec, root=table.get("root", "C"))
            q = Quantiser(
                scale,
                hysteresis_cents=float(table.get("hysteresis_cents", 0.0)),
                strength=float(table.get("strength", 1.0)),
            )
        return cls(table.get("span", (0.0, 1.0)), table.get("notes", (48, 72)), q)

    def reset(self) -> None:
        if self.quantiser is not None:
            self.quantiser.reset()

    def __call__(self, x: float) -> float:
        """Pitch (MIDI float) for signal value ``x``. Runs on the decode worker."""
        u = min(max((x - self.x0) / (self.x1 - self.x0), 0.0), 1.0)
        midi = self.lo + u * (self.hi - self.lo)
        return self.quantiser(midi) if self.quantiser is not None else midi

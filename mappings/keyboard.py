"""A keyboard voice: MIDI notes, bend and velocity to pitch and loudness, frame by frame.

:class:`Keyboard` takes note on/off (``channel 1-16, note 0-127, velocity 0-127``; velocity 0
is a note off) and pitch bend, and :meth:`Keyboard.step` advances every voice by ``dt_s``
seconds and returns, per voice, its pitch (MIDI float), its loudness envelope (0..1) and its
gate. The engine turns pitch and loudness into the model's pitch and loudness latents.

- **Pitch:** 12-TET MIDI numbers (A4 = 69; the Hz of A4 is the conversion's business,
  :func:`mappings.pitch.midi_to_hz`), plus the channel's bend times ``bend_semitones``.
- **Loudness:** ``(velocity / 127) ** velocity_curve``, reached through a linear attack of
  ``attack_ms`` (from 0 to 1; a new level is approached at that same slope) and released
  exponentially, -60 dB after ``release_ms``, then 0 and the voice is free.
- **One voice** (``voices = 1``): mono legato with last-note priority. A note played while
  another is held glides there in ``glide_ms`` (constant time whatever the interval) without
  retriggering the envelope; releasing it returns to the most recent note still held. A note
  after all keys are up starts at its pitch with a new attack, from wherever the release had
  got to (never a jump to 0: no click).
- **N voices:** each note gets a voice: a free one, else the oldest releasing one, else the
  oldest held one (voice stealing: oldest first). A note already sounding is retriggered on
  its own voice. Polyphonic voices do not glide.

The sustain pedal (CC 64, value >= 64 = down) keeps released keys sounding until it comes up.

Bad MIDI (note 200, velocity -1, channel 0 or 17, NaN, a non-number) raises
:class:`~mappings.errors.InputError` with the fault's ``kind``, is counted in
``rejected[kind]``, and changes nothing.

Deterministic and frame-stepped: the same events at the same frames give the same output, and
the envelope and glide are written in seconds, so stepping twice by ``dt/2`` equals once by
``dt`` (within rounding) except where a segment ends between the two. ``step`` runs on the
decode worker: a few numpy operations on arrays of ``voices`` elements (tens of microseconds),
no Python loop over voices; it returns the voice's own arrays, overwritten on the next step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mappings.errors import InputError, floats

RELEASE_FLOOR = 1e-3  # -60 dB: the release's end, where the voice is freed
SUSTAIN_CC = 64
BEND_MAX = 8192.0


@dataclass(frozen=True)
class VoiceParams:
    """A keyboard voice's settings (a patch's ``[voice]`` table).

    Parameters
    ----------
    voices : int
        1 = mono legato with glide; more = polyphonic.
    attack_ms, release_ms : float
        Attack from 0 to full level; release to -60 dB.
    glide_ms : float
        Portamento time between legato notes (mono only); 0 = jump.
    bend_semitones : float
        Pitch bend range each way.
    velocity_curve : float
        Loudness = (velocity / 127) ** velocity_curve; 0 = every note at full level.
    channel : int
        MIDI channel to listen to, 1-16; 0 = all.
    """

    voices: int = 1
    attack_ms: float = 10.0
    release_ms: float = 200.0
    glide_ms: float = 60.0
    bend_semitones: float = 2.0
    velocity_curve: float = 1.0
    channel: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.voices <= 64:
            raise ValueError(f"voices must be in [1, 64], got {self.voices}")
        for name in ("attack_ms", "release_ms", "glide_ms", "velocity_curve"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {v}")
        if not (math.isfinite(self.bend_semitones) and 0 <= self.bend_semitones <= 48):
            raise ValueError(f"bend_semitones must be in [0, 48], got {self.bend_semitones}")
        if not 0 <= self.channel <= 16:
            raise ValueError(f"channel must be 0 (all) or 1-16, got {self.channel}")


def _ints(
    address: str, args: Sequence[Any], ranges: Sequence[tuple[int, int]], what: str
) -> list[int]:
    v = floats(address, args, n=len(ranges), expected=f"{len(ranges)} integers ({what})")
    out = []
    for k, (x, (lo, hi)) in enumerate(zip(v, ranges, strict=True)):
        if x != int(x) or not lo <= x <= hi:
            name = what.split()[k]
            raise InputError(
                "range", f"{address} {name} = {x:g} must be an integer in [{lo}, {hi}]"
            )
        out.append(int(x))
    return out


def check_note(args: Sequence[Any]) -> tuple[int, int, int]:
    """Validate ``(channel 1-16, note 0-127, velocity 0-127)``; raise InputError."""
    ch, note, vel = _ints(
        "/midi/note", args, ((1, 16), (0, 127), (0, 127)), "channel note velocity"
    )
    return ch, note, vel


def check_cc(args: Sequence[Any]) -> tuple[int, int, int]:
    """Validate ``(channel 1-16, control 0-127, value 0-127)``; raise InputError."""
    ch, control, value = _ints(
        "/midi/cc", args, ((1, 16), (0, 127), (0, 127)), "channel control value"
    )
    return ch, control, value


def check_bend(args: Sequence[Any]) -> tuple[int, int]:
    """Validate ``(channel 1-16, value -8192..8191)``; raise InputError."""
    ch, value = _ints("/midi/bend", args, ((1, 16), (-8192, 8191)), "channel value")
    return ch, value


class Keyboard:
    """N keyboard voices (see the module docstring).

    Attributes
    ----------
    pitch : ndarray, shape (voices,), float64
        MIDI note per voice, bend included (a free voice keeps its last pitch).
    loudness : ndarray, shape (voices,), float64
        Envelope value 0..1.
    gate : ndarray, shape (voices,), bool
        True while the voice's key is held.
    rejected : dict[str, int]
        Bad MIDI by kind.
    """

    def __init__(self, params: VoiceParams | None = None, *, start_note: float = 60.0) -> None:
        self.params = p = params or VoiceParams()
        n = p.voices
        self.pitch = np.full(n, float(start_note))
        self.loudness = np.zeros(n)
        self.gate = np.zeros(n, bool)
        self.rejected: dict[str, int] = {}
        self._start_note = float(start_note)
        self._note = np.full(n, -1, np.int64)  # key a voice plays (-1: none)
        self._channel = np.zeros(n, np.int64)
        self._base = np.full(n, float(start_note))  # pitch before bend
        self._glide_to = np.full(n, float(start_note))
        self._glide_rate = np.zeros(n)  # semitones per second, signed
        self._level = np.zeros(n)  # envelope target while the gate is on
        self._age = np.zeros(n, np.int64)  # note-on order, for stealing
        self._clock = 0
        self._bend = np.zeros(17)  # per channel (index 1-16), semitones
        self._held: list[tuple[int, int, int]] = []  # mono: (channel, note, velocity), oldest first
        self._sustain = np.zeros(17, bool)  # per channel (index 1-16): pedal down
        self._sustained: set[tuple[int, int]] = set()  # (channel, key) released under the pedal

    # --- events ------------------------------------------------------------------------
    def on_midi(self, address: str, args: Sequence[Any]) -> bool:
        """``/midi/note``, ``/midi/bend`` or the sustain pedal (``/midi/cc`` 64) with its
        arguments as they came (from a MIDI port, OSC or a score); False for anything else.
        Bad arguments raise InputError, counted."""
        if address == "/midi/note":
            if len(args) != 3:
                self.rejected["arity"] = self.rejected.get("arity", 0) + 1
                raise InputError(
                    "arity",
                    f"/midi/note expects 3 integers (channel note velocity), got {len(args)}",
                )
            self.note(*args)
            return True
        if address == "/midi/bend":
            if len(args) != 2:
                self.rejected["arity"] = self.rejected.get("arity", 0) + 1
                raise InputError(
                    "arity", f"/midi/bend expects 2 integers (channel value), got {len(args)}"
                )
            self.bend(*args)
            return True
        if address == "/midi/cc":
            if len(args) != 3:
                self.rejected["arity"] = self.rejected.get("arity", 0) + 1
                raise InputError(
                    "arity",
                    f"/midi/cc expects 3 integers (channel control value), got {len(args)}",
                )
            try:
                ch, control, value = check_cc(args)
            except InputError as exc:
                self.rejected[exc.kind] = self.rejected.get(exc.kind, 0) + 1
                raise
            if control == SUSTAIN_CC and not (self.params.channel and ch != self.params.channel):
                self.sustain(ch, value >= 64)
                return True
        return False

    def note(self, channel: Any, note: Any, velocity: Any) -> None:
        """Note on (velocity > 0) or off (velocity 0). Bad values raise InputError, counted."""
        try:
            ch, key, vel = check_note((channel, note, velocity))
        except InputError as exc:
            self.rejected[exc.kind] = self.rejected.get(exc.kind, 0) + 1
            raise
        if self.params.channel and ch != self.params.channel:
            return
        if vel == 0 and self._sustain[ch]:
            self._sustained.add((ch, key))  # sounds on until the pedal is up
            return
        self._sustained.discard((ch, key))
        if self.params.voices == 1:
            self._mono(ch, key, vel)
        elif vel > 0:
            self._poly_on(ch, key, vel)
        else:
            for v in np.flatnonzero((self._note == key) & (self._channel == ch) & self.gate):
                self.gate[v] = False

    def bend(self, channel: Any, value: Any) -> None:
        """Pitch bend ``-8192..8191`` on a channel (0 = centre). Bad values raise, counted."""
        try:
            ch, v = check_bend((channel, value))
        except InputError as exc:
            self.rejected[exc.kind] = self.rejected.get(exc.kind, 0) + 1
            raise
        self._bend[ch] = v / BEND_MAX * self.params.bend_semitones

    def sustain(self, channel: int, down: bool) -> None:
        """Sustain pedal (CC 64) on a channel: while down, released keys sound on; when it
        comes up, they are released (checked values: call through :meth:`on_midi`)."""
        self._sustain[channel] = down
        if not down:
            for ch, key in sorted(k for k in self._sustained if k[0] == channel):
                self._sustained.discard((ch, key))
                self.note(ch, key, 0)

    def all_off(self) -> None:
        """Release every voice (panic keeps the releases; :meth:`reset` silences at once)."""
        self.gate[:] = False
        self._held.clear()
        self._sustained.clear()
        self._sustain[:] = False

    def reset(self) -> None:
        """Silence and forget everything (but the rejection counts)."""
        self.all_off()
        self.loudness[:] = 0.0
        self._note[:] = -1
        self._bend[:] = 0.0
        self._glide_rate[:] = 0.0
        self._base[:] = self._glide_to[:] = self.pitch[:] = self._start_note

    def _level_of(self, velocity: int) -> float:
        return (velocity / 127.0) ** self.params.velocity_curve

    def _mono(self, ch: int, key: int, vel: int) -> None:
        held = self._held
        for i, (c, k, _) in enumerate(held):
            if c == ch and k == key:
                del held[i]
                break
        if vel > 0:
            legato = bool(held)
            held.append((ch, key, vel))
            self._go(ch, key, vel, legato)
        elif held:
            c, k, v = held[-1]
            if k != self._note[0] or c != self._channel[0]:
                self._go(c, k, v, legato=True)
        else:
            self.gate[0] = False

    def _go(self, ch: int, key: int, vel: int, legato: bool) -> None:
        """Mono: move voice 0 to ``key`` (glide when legato), set its level."""
        glide_s = self.params.glide_ms / 1000.0
        self._note[0], self._channel[0] = key, ch
        self._level[0] = self._level_of(vel)
        self.gate[0] = True
        self._glide_to[0] = float(key)
        if legato and glide_s > 0:
            self._glide_rate[0] = (key - self._base[0]) / glide_s
        else:
            self._base[0] = float(key)
            self._glide_rate[0] = 0.0

    def _poly_on(self, ch: int, key: int, vel: int) -> None:
        sounding = self.gate | (self.loudness > 0)
        same = np.flatnonzero((self._note == key) & (self._channel == ch) & sounding)
        if same.size:
            v = int(same[0])
        else:
            free = np.flatnonzero(~self.gate & (self.loudness <= 0))
            releasing = np.flatnonzero(~self.gate)
            pool = free if free.size else releasing if releasing.size else np.arange(len(self.gate))
            v = int(pool[np.argmin(self._age[pool])])
        self._clock += 1
        self._age[v] = self._clock
        self._note[v], self._channel[v] = key, ch
        self._base[v] = self._glide_to[v] = float(key)
        self._glide_rate[v] = 0.0
        self._level[v] = self._level_of(vel)
        self.gate[v] = True

    # --- time ----------------------------------------------------------------------------
    def step(self, dt_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Advance by ``dt_s`` seconds; return (pitch, loudness, gate), each shape (voices,).

        Runs on the decode worker. The arrays are the voice's own: read them before the next
        call.
        """
        p = self.params
        dt = max(float(dt_s), 0.0)
        # Glide: constant rate towards the target, landing exactly on it.
        moving = self._glide_rate != 0.0
        if moving.any():
            stepped = self._base + self._glide_rate * dt
            past = (stepped - self._glide_to) * np.sign(self._glide_rate) >= 0
            self._base = np.where(moving, np.where(past, self._glide_to, stepped), self._base)
            self._glide_rate[moving & past] = 0.0
        # Envelope: linear towards the level while gated (attack slope), exponential release.
        slope = dt / (p.attack_ms / 1000.0) if p.attack_ms > 0 else math.inf
        up = np.minimum(self.loudness + slope, self._level)
        down = np.maximum(self.loudness - slope, self._level)
        gated = np.where(self.loudness < self._level, up, down)
        if p.release_ms > 0:
            decay = RELEASE_FLOOR ** (dt / (p.release_ms / 1000.0))
            released = self.loudness * decay
            released[released <= RELEASE_FLOOR * (1.0 + 1e-9)] = 0.0
        else:
            released = np.zeros_like(self.loudness)
        self.loudness[:] = np.where(self.gate, gated, released)
        done = ~self.gate & (self.loudness <= 0.0)
        self._note[done] = -1
        self.pitch[:] = self._base + self._bend[self._channel]
        return self.pitch, self.loudness, self.gate


class VoiceLatent:
    """A voice's pitch and loudness written into a model's pitch and loudness latents.

    Reads the model card's ``[latent]`` table: ``pitch_dim``, ``pitch_scale``,
    ``pitch_ref_hz`` (``z = pitch_scale * log2(f0 / pitch_ref_hz)``) and, when present,
    ``loudness_dim``, ``loudness_ref_db``, ``loudness_db_per_unit``
    (``z = (level_db - loudness_ref_db) / loudness_db_per_unit``). The envelope sets the level:
    ``level_db + 20 log10(envelope)``, never below ``level_db + floor_db``.

    Parameters
    ----------
    latent : dict
        The card's ``[latent]`` table; without ``pitch_dim`` the voice writes nothing
        (:attr:`playable` is False) and the caller says so.
    tuning_hz : float
        A4 of the keyboard.
    level_db : float
        Level of a full-velocity note (dB full scale).
    floor_db : float
        Level of a silent voice relative to ``level_db``.
    """

    def __init__(
        self, latent: dict[str, Any], *, tuning_hz: float = 440.0, level_db: float = -12.0,
        floor_db: float = -60.0,
    ) -> None:  # fmt: skip
        self.pitch_dim = int(latent["pitch_dim"]) if "pitch_dim" in latent else None
        self.pitch_scale = float(latent.get("pitch_scale", 1.0))
        self.pitch_ref_hz = float(latent.get("pitch_ref_hz", 440.0))
        has_loud = "loudness_dim" in latent and "loudness_db_per_unit" in latent
        self.loudness_dim = int(latent["loudness_dim"]) if has_loud else None
        self.loudness_ref_db = float(latent.get("loudness_ref_db", 0.0))
        self.loudness_db_per_unit = float(latent.get("loudness_db_per_unit", 1.0))
        if self.loudness_db_per_unit == 0:
            raise ValueError("[latent] loudness_db_per_unit must not be 0")
        self.tuning_hz = float(tuning_hz)
        self.level_db = float(level_db)
        self.floor = 10.0 ** (floor_db / 20.0)
        # Pitch latent = a * midi + b: one multiply-add per frame.
        self._a = self.pitch_scale / 12.0
        self._b = self.pitch_scale * (math.log2(self.tuning_hz / self.pitch_ref_hz) - 69.0 / 12.0)

    @property
    def playable(self) -> bool:
        return self.pitch_dim is not None

    def pitch_latent(self, midi: float) -> float:
        return self._a * midi + self._b

    def loudness_latent(self, envelope: float) -> float:
        db = self.level_db + 20.0 * math.log10(max(envelope, self.floor))
        return (db - self.loudness_ref_db) / self.loudness_db_per_unit

    def write(self, z: np.ndarray, midi: float, envelope: float) -> None:
        """Set the pitch (and loudness) dims of ``z`` in place. Runs on the decode worker."""
        if self.pitch_dim is not None and self.pitch_dim < len(z):
            z[self.pitch_dim] = self._a * midi + self._b
        if self.loudness_dim is not None and self.loudness_dim < len(z):
            z[self.loudness_dim] = self.loudness_latent(envelope)


def timbre_dims(latent: dict[str, Any], latent_size: int) -> list[int]:
    """The card's ``timbre_dims`` when it lists them, else every latent dimension that is
    neither its pitch nor its loudness dimension."""
    listed = latent.get("timbre_dims")
    if listed is not None:
        return [int(d) for d in listed if 0 <= int(d) < latent_size]
    taken = {latent.get("pitch_dim"), latent.get("loudness_dim")}
    return [d for d in range(latent_size) if d not in taken]


class PlayedVoices:
    """A keyboard's voices as latents: each voice's row is a base latent (the patch's timbre)
    with the pitch and loudness dimensions the card declares set from that voice.

    Parameters
    ----------
    params : VoiceParams
    latent : dict
        The model card's ``[latent]`` table (see :class:`VoiceLatent`).
    latent_size : int
    tuning_hz, level_db : float
        See :class:`VoiceLatent`.
    """

    def __init__(
        self, params: VoiceParams, latent: dict[str, Any], latent_size: int, *,
        tuning_hz: float = 440.0, level_db: float = -12.0,
    ) -> None:  # fmt: skip
        self.keyboard = Keyboard(params)
        self.voice = VoiceLatent(latent, tuning_hz=tuning_hz, level_db=level_db)
        self.latent_size = int(latent_size)
        self._z = np.zeros((params.voices, self.latent_size))
        self._t: float | None = None

    @property
    def playable(self) -> bool:
        """False when the model has no pitch dimension: notes then set nothing."""
        return self.voice.playable

    def on_midi(self, address: str, args: Sequence[Any]) -> bool:
        """See :meth:`Keyboard.on_midi`."""
        return self.keyboard.on_midi(address, args)

    def reset(self) -> None:
        self.keyboard.reset()
        self._t = None

    def latents(self, t: float, base: np.ndarray) -> np.ndarray:
        """Every voice's latent at time ``t`` (seconds, increasing), shape (voices,
        latent_size). Runs on the decode worker; the array is overwritten on the next call."""
        dt = 0.0 if self._t is None else max(t - self._t, 0.0)
        self._t = t
        pitch, loud, _gate = self.keyboard.step(dt)
        z = self._z
        z[:] = base[: self.latent_size]
        for v in range(len(z)):
            self.voice.write(z[v], float(pitch[v]), float(loud[v]))
        return z

"""A patch's pitched parts: the keyboard ``[voice]`` and the sensor ``[pitch]`` tables.

Both write the pitch (and, for the keyboard, loudness) dimensions that the model's card
declares (``[latent] pitch_dim``, ``pitch_scale``, ``pitch_ref_hz``, ``loudness_dim``...), on
top of the latent the rest of the patch computes (its mapping around the centre, or the direct
target). A model whose card declares no pitch dimension (a RAVE export, an older Sillage model)
still plays the patch: the parts write nothing, and :attr:`VoicePart.notice` says so.

``[voice]`` (``kind = "keyboard"``; see ``mappings.keyboard``)::

    voices, attack_ms, release_ms, glide_ms, bend_semitones, velocity_curve, channel,
    tuning_hz (A4), level_db (a full-velocity note), timbre = ["<signal>", ...]

``timbre`` signals (conditioned like any mapping input) move the model's timbre dimensions in
order: the first listed the first timbre dimension, and so on.

``[pitch]`` (see ``mappings.pitch.SensorPitch``)::

    input = "<signal>", span = [lo, hi], notes = [low, high], scale, root,
    hysteresis_cents, strength, tuning_hz, fallback_dim, fallback_gain

On a model without a pitch dimension, ``fallback_dim`` (optional) gives the ``[pitch]`` input
a plain latent dimension to move instead (its conditioned value times ``fallback_gain``, 1 by
default), so a sensor patch keeps all its controls on a RAVE export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mappings.keyboard import PlayedVoices, VoiceLatent, VoiceParams, timbre_dims
from mappings.pitch import SensorPitch

VOICE_KEYS = {
    "kind", "voices", "attack_ms", "release_ms", "glide_ms", "bend_semitones", "velocity_curve",
    "channel", "tuning_hz", "level_db", "timbre",
}  # fmt: skip
PITCH_KEYS = {
    "input", "span", "notes", "scale", "root", "hysteresis_cents", "strength", "tuning_hz",
    "fallback_dim", "fallback_gain",
}  # fmt: skip


@dataclass
class VoicePart:
    """What ``[voice]`` and ``[pitch]`` add to a chain. Runs on the decode worker once built.

    Attributes
    ----------
    voices : PlayedVoices or None
        The keyboard (``[voice]``).
    timbre : list of (signal name, latent dimension, gain)
        Offsets added to the latent: the keyboard's timbre controls, a ``[pitch]`` fallback.
    pitch : (signal name, SensorPitch, VoiceLatent) or None
        The sensor pitch (``[pitch]``).
    notice : str
        Why a part plays nothing on this model ("" when everything plays).
    """

    voices: PlayedVoices | None = None
    timbre: list[tuple[str, int, float]] = field(default_factory=list)
    pitch: tuple[str, SensorPitch, VoiceLatent] | None = None
    notice: str = ""
    _rows: np.ndarray | None = None

    @property
    def n_voices(self) -> int:
        """Model streams the engine decodes for this patch: the keyboard's voices when the
        model has a pitch dimension, else 1 (N copies of an unpitched sound would only be
        louder)."""
        if self.voices is None or not self.voices.playable:
            return 1
        return self.voices.keyboard.params.voices

    def signal_names(self) -> list[str]:
        names = [n for n, _, _ in self.timbre]
        if self.pitch is not None:
            names.append(self.pitch[0])
        return names

    def reset(self) -> None:
        if self.voices is not None:
            self.voices.reset()
        if self.pitch is not None:
            self.pitch[1].reset()

    def apply(self, t: float, z: np.ndarray, value: Any) -> np.ndarray:
        """The target with timbre offsets, sensor pitch and voices applied, shape
        (latent_size,): voice 0's row when there is a keyboard. ``value(name)`` reads a
        conditioned signal. Runs on the decode worker."""
        for name, dim, gain in self.timbre:
            z[dim] += gain * value(name)
        if self.pitch is not None:
            name, sensor, latent = self.pitch
            latent.write(z, sensor(value(name)), 1.0)
        if self.voices is None:
            return z
        self._rows = self.voices.latents(t, z)
        return self._rows[0]

    def fixed_dims(self) -> list[int]:
        """Dimensions the parts set in absolute units (pitch, loudness): the engine's
        ``/sillage/scale`` around the centre must leave them alone."""
        dims: list[int] = []
        if self.pitch is not None and self.pitch[2].pitch_dim is not None:
            dims.append(self.pitch[2].pitch_dim)
        if self.voices is not None and self.voices.playable:
            v = self.voices.voice
            dims += [d for d in (v.pitch_dim, v.loudness_dim) if d is not None]
        return sorted(set(dims))

    def active(self, voice: int) -> bool:
        """Whether keyboard voice ``voice`` sounds (key held or release ringing)."""
        if self.voices is None:
            return voice == 0
        kb = self.voices.keyboard
        return bool(kb.gate[voice] or kb.loudness[voice] > 0.0)

    def rows(self) -> np.ndarray | None:
        """Every voice's latent from the last :meth:`apply` (None without a keyboard)."""
        return self._rows


def _number(table: dict[str, Any], key: str, where: str, default: float) -> float:
    v = table.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{where} {key} must be a number, got {v!r}")
    return float(v)


def build_voice_part(
    data: dict[str, Any], latent: dict[str, Any], latent_size: int
) -> VoicePart | None:
    """The ``[voice]`` and ``[pitch]`` tables of a patch for a model whose card's
    ``[latent]`` table is ``latent`` ({} when it has none). None when the patch has neither.

    Raises
    ------
    ValueError
        A key that is unknown or out of range; the message names it and the rule.
    """
    vt, pt = data.get("voice"), data.get("pitch")
    if vt is None and pt is None:
        return None
    part = VoicePart()
    playable = "pitch_dim" in latent
    if vt is not None:
        if not isinstance(vt, dict):
            raise ValueError("[voice] must be a table")
        unknown = sorted(set(vt) - VOICE_KEYS)
        if unknown:
            raise ValueError(f"[voice]: unknown key(s) {unknown}; known: {sorted(VOICE_KEYS)}")
        if vt.get("kind", "keyboard") != "keyboard":
            raise ValueError(f'[voice] kind must be "keyboard", got {vt.get("kind")!r}')
        voices = vt.get("voices", 1)
        channel = vt.get("channel", 0)
        if not isinstance(voices, int) or isinstance(voices, bool):
            raise ValueError(f"[voice] voices must be an integer, got {voices!r}")
        if not isinstance(channel, int) or isinstance(channel, bool):
            raise ValueError(f"[voice] channel must be an integer 0-16, got {channel!r}")
        params = VoiceParams(
            voices=voices,
            attack_ms=_number(vt, "attack_ms", "[voice]", 10.0),
            release_ms=_number(vt, "release_ms", "[voice]", 200.0),
            glide_ms=_number(vt, "glide_ms", "[voice]", 60.0),
            bend_semitones=_number(vt, "bend_semitones", "[voice]", 2.0),
            velocity_curve=_number(vt, "velocity_curve", "[voice]", 1.0),
            channel=channel,
        )
        part.voices = PlayedVoices(
            params, latent, latent_size,
            tuning_hz=_number(vt, "tuning_hz", "[voice]", 440.0),
            level_db=_number(vt, "level_db", "[voice]", -12.0),
        )  # fmt: skip
        names = vt.get("timbre", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"[voice] timbre must be a list of signal names, got {names!r}")
        dims = timbre_dims(latent, latent_size)
        # Controls past the last timbre dimension have nothing to move.
        part.timbre = [(n, d, 1.0) for n, d in zip(names, dims, strict=False)]
        if not playable:
            part.notice = (
                "this model's card declares no pitch dimension ([latent] pitch_dim): the "
                "keyboard's notes set nothing; its controls still move the latent. Play a model "
                "with a pitch dimension (the default model) for notes"
            )
    if pt is not None:
        if not isinstance(pt, dict):
            raise ValueError("[pitch] must be a table")
        unknown = sorted(set(pt) - PITCH_KEYS)
        if unknown:
            raise ValueError(f"[pitch]: unknown key(s) {unknown}; known: {sorted(PITCH_KEYS)}")
        name = pt.get("input")
        if not isinstance(name, str) or not name:
            raise ValueError('[pitch] needs input = "<signal>" (the signal that plays pitch)')
        sensor = SensorPitch.from_table(pt)
        vl = VoiceLatent(latent, tuning_hz=_number(pt, "tuning_hz", "[pitch]", 440.0))
        # Only the pitch dimension: the sensor does not set loudness.
        vl.loudness_dim = None
        fallback = pt.get("fallback_dim")
        if fallback is not None and (
            isinstance(fallback, bool) or not isinstance(fallback, int) or fallback < 0
        ):
            raise ValueError(f"[pitch] fallback_dim must be a latent dimension, got {fallback!r}")
        if playable:
            part.pitch = (name, sensor, vl)
        elif fallback is not None and fallback < latent_size:
            gain = _number(pt, "fallback_gain", "[pitch]", 1.0)
            part.timbre.append((name, fallback, gain))
            part.notice = part.notice or (
                "this model's card declares no pitch dimension ([latent] pitch_dim): "
                f"[pitch] {name} moves latent dimension {fallback} instead (fallback_dim)"
            )
        else:
            part.notice = part.notice or (
                "this model's card declares no pitch dimension ([latent] pitch_dim): [pitch] "
                f"({name}) sets nothing; the rest of the patch plays as usual"
            )
    return part

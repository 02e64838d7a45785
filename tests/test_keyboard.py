"""The keyboard patch end to end: MIDI notes in a score play in tune through the engine.

The model is the scripted oscillator of ``tests.modelfixtures`` (its pitch is latent dim 0,
``f0 = 220 * 2 ** (z0 / 2)``, its amplitude dim 1) with a card declaring exactly that, so every cent of error is
the keyboard's or the engine's, not a trained model's.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest

from instrument.engine.loading import load_patch_for
from instrument.engine.offline import render
from instrument.engine.runtime import ModelRuntime
from instrument.link.events import Event
from instrument.metrics import Reporter
from models.playability import estimate_f0

PATCHES = Path(__file__).resolve().parent.parent / "patches"
# Its amplitude is 0.25 * sigmoid(2 * z1 + 1): not in dB, but a note at full level (-12 dB)
# gives z1 = 0 and the release floor (-72 dB) z1 = -10, silence.
CARD = """
[latent]
pitch_dim = 0
pitch_scale = 2.0
pitch_ref_hz = 220.0
loudness_dim = 1
loudness_ref_db = -12.0
loudness_db_per_unit = 6.0
"""


@pytest.fixture(scope="module")
def pitched_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.modelfixtures import osc_model

    path = osc_model(tmp_path_factory.mktemp("pitched") / "osc-pitched.ts", latent_size=4)
    path.with_suffix(".toml").write_text(CARD)
    return path


def hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def cents(f: float, note: float) -> float:
    return 1200 * np.log2(f / hz(note))


def play(
    model: Path, patch: str | Path, events: list[Event], seconds: float
) -> tuple[np.ndarray, Reporter]:
    runtime = ModelRuntime(model)
    reporter = Reporter(stream=io.StringIO())
    audio = render(
        runtime, load_patch_for(patch, runtime), events, seconds=seconds, reporter=reporter
    )
    return audio[:, 0].astype(np.float64), reporter


def melody(notes: list[int], step_s: float) -> list[Event]:
    events = []
    for k, note in enumerate(notes):
        events.append(Event(k * step_s, "/midi/note", (1, note, 100)))
        events.append(Event((k + 1) * step_s - 0.02, "/midi/note", (1, note, 0)))
    return events


def test_score_notes_render_at_their_pitches(pitched_model: Path, one_torch_thread: None) -> None:
    notes = [45, 57, 60, 64, 67, 72, 81]
    step = 0.3
    y, reporter = play(pitched_model, "keyboard", melody(notes, step), len(notes) * step)
    sr = 48000
    for k, note in enumerate(notes):
        seg = y[int((k * step + 0.12) * sr) : int(((k + 1) * step - 0.03) * sr)]
        f0, aper = estimate_f0(seg, sr, fmin=0.6 * hz(note), fmax=1.6 * hz(note))
        assert abs(cents(f0, note)) < 2.0, (note, f0)
        assert aper < 0.2
    assert reporter.total == 0


def test_pitch_bend_and_legato_glide(pitched_model: Path, one_torch_thread: None) -> None:
    events = [
        Event(0.0, "/midi/note", (1, 60, 100)),
        Event(0.3, "/midi/note", (1, 67, 100)),  # legato: 60 still held, glides in 60 ms
        Event(0.6, "/midi/bend", (1, 8191)),  # +2 semitones
    ]
    y, _ = play(pitched_model, "keyboard", events, 0.9)
    sr = 48000
    for (a, b), note in (((0.15, 0.29), 60), ((0.45, 0.59), 67), ((0.75, 0.89), 69)):
        f0, _ = estimate_f0(y[int(a * sr) : int(b * sr)], sr, fmin=200, fmax=600)
        assert abs(cents(f0, note)) < 3.0, (note, f0)


def _poly_patch(tmp_path: Path, voices: int) -> Path:
    text = (PATCHES / "keyboard.toml").read_text()
    text = re.sub(r"(?m)^voices = \d+", f"voices = {voices}", text, count=1)
    path = tmp_path / f"keyboard-{voices}.toml"
    path.write_text(text)
    return path


def _peaks(y: np.ndarray, notes: list[int], sr: int = 48000) -> list[float]:
    """Spectral level at each note's f0 relative to the strongest of them, dB."""
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / sr)
    level = np.array([spec[np.abs(freqs - hz(n)) < 2].max() for n in notes])
    return list(20 * np.log10(level / level.max() + 1e-12))


def test_four_voice_chord_renders_four_pitches(
    pitched_model: Path, tmp_path: Path, one_torch_thread: None
) -> None:
    chord = [60, 64, 67, 71]
    events = [Event(0.0, "/midi/note", (1, n, 100)) for n in chord]
    y, _ = play(pitched_model, _poly_patch(tmp_path, 4), events, 0.6)
    levels = _peaks(y[int(0.2 * 48000) :], chord)
    assert min(levels) > -3, levels  # four notes, equally loud
    # The same chord on the mono keyboard: only the last note sounds.
    y1, _ = play(pitched_model, "keyboard", events, 0.6)
    levels1 = _peaks(y1[int(0.2 * 48000) :], chord)
    assert levels1[-1] > -1e-6 and max(levels1[:-1]) < -60, levels1


def test_bad_midi_is_rejected_counted_and_changes_nothing(
    pitched_model: Path, one_torch_thread: None
) -> None:
    good = melody([60, 64], 0.25)
    bad = [
        Event(0.1, "/midi/note", (1, 200, 100)),
        Event(0.12, "/midi/note", (1, 62, -1)),
        Event(0.14, "/midi/note", (0, 62, 100)),
        Event(0.16, "/midi/note", (17, 62, 100)),
        Event(0.18, "/midi/note", (1, float("nan"), 100)),
        Event(0.2, "/midi/note", (1, 62)),
    ]
    clean, r0 = play(pitched_model, "keyboard", good, 0.5)
    dirty, r1 = play(pitched_model, "keyboard", good + bad, 0.5)
    assert r0.total == 0
    assert r1.total == len(bad)
    assert r1.counts["range"] == 4 and r1.counts["nan"] == 1 and r1.counts["arity"] == 1
    np.testing.assert_array_equal(clean, dirty)


def test_score_events_play_exactly_like_live_midi(
    pitched_model: Path, one_torch_thread: None
) -> None:
    """Live MIDI arrives checked (route "patch", from instrument.control.midi_in); a score's
    events arrive unchecked and are checked by the decode loop: the same sound."""
    score = melody([57, 69, 62], 0.2)
    live = [Event(e.time, e.address, e.args, route="patch") for e in score]
    a, _ = play(pitched_model, "keyboard", score, 0.6)
    b, _ = play(pitched_model, "keyboard", live, 0.6)
    np.testing.assert_array_equal(a, b)


def test_model_without_pitch_dim_says_so_and_plays(
    mono_model: Path, one_torch_thread: None
) -> None:
    y, reporter = play(mono_model, "keyboard", melody([60, 72], 0.2), 0.4)
    assert reporter.counts["no_pitch"] == 1
    assert np.all(np.isfinite(y)) and np.abs(y).max() > 1e-3


def test_sensor_pitch_patch_plays_in_the_scale(pitched_model: Path, one_torch_thread: None) -> None:
    """hands: the right hand's x plays C major from C3 to C5 on a pitched model (snap
    strength 0.85: within 0.15 semitone of a note, the hand's 1€ filter and the engine's
    smoothing settled)."""
    from tests.test_mappings_hands import synthetic_hand

    sr = 48000
    events = []
    xs = [0.2, 0.45, 0.8]
    hold = 1.0
    for k, x in enumerate(xs):
        for t in np.arange(k * hold, (k + 1) * hold, 1 / 30):
            hand = synthetic_hand(x, 0.5, pinch=0.0).ravel().tolist()
            events.append(Event(float(t), "/hand/right", tuple(hand)))
    y, _ = play(pitched_model, "hands", events, hold * len(xs))
    major = {0, 2, 4, 5, 7, 9, 11}
    played = []
    for k in range(len(xs)):
        seg = y[int(((k + 1) * hold - 0.3) * sr) : int((k + 1) * hold * sr)]
        f0, _ = estimate_f0(seg, sr, fmin=100, fmax=700)
        midi = 69 + 12 * np.log2(f0 / 440)
        assert abs(midi - round(midi)) < 0.16, midi  # on a note
        assert round(midi) % 12 in major and 48 <= round(midi) <= 72, midi
        played.append(round(midi))
    assert played == sorted(played) and len(set(played)) == 3


def test_sustain_pedal_from_a_score(pitched_model: Path, one_torch_thread: None) -> None:
    events = [
        Event(0.0, "/midi/cc", (1, 64, 127)),
        Event(0.0, "/midi/note", (1, 60, 100)),
        Event(0.1, "/midi/note", (1, 60, 0)),  # key up under the pedal: sounds on
        Event(0.5, "/midi/cc", (1, 64, 0)),
    ]
    y, _ = play(pitched_model, "keyboard", events, 1.0)
    sr = 48000
    held = np.sqrt(np.mean(y[int(0.3 * sr) : int(0.5 * sr)] ** 2))
    after = np.sqrt(np.mean(y[int(0.9 * sr) :] ** 2))
    assert held > 0.05 and after < held / 30


def test_sensor_pitch_falls_back_to_a_plain_dimension_without_pitch() -> None:
    """hands on a model with no pitch dimension: the right hand's x moves dim 0 (× 2) instead."""
    from instrument.patch import PatchContext, load_patch
    from instrument.patch.contract import ControlState

    pitched = PatchContext(4, 48000, latent={"pitch_dim": 0, "pitch_scale": 1.0})
    plain = PatchContext(4, 48000)
    assert load_patch("hands", context=pitched).controller.notice == ""
    controller = load_patch("hands", context=plain).controller
    assert "fallback_dim" in controller.notice
    from tests.test_mappings_hands import synthetic_hand

    state = ControlState(4)
    assert controller.target(0.0, state)[0] == pytest.approx(0.0)
    assert controller.voice.timbre[-1] == ("hands.right.x", 0, 2.0)
    for k in range(60):  # the hand held to the right for 2 s (30 fps)
        hand = tuple(synthetic_hand(0.9, 0.5, pinch=0.0).ravel().tolist())
        args = controller.validate("/hand/right", hand)
        controller.on_event(Event(k / 30, "/hand/right", args), state)
    assert controller.target(2.0, state)[0] > 1.0  # x moved dim 0, as before [pitch]


def test_scale_leaves_pitch_in_tune_and_polyphony_needs_pitch(
    pitched_model: Path, tmp_path: Path, one_torch_thread: None
) -> None:
    from instrument.patch import PatchContext, load_patch

    events = [Event(0.0, "/sillage/scale", (2.0,)), Event(0.0, "/midi/note", (1, 64, 100))]
    y, _ = play(pitched_model, "keyboard", events, 0.4)
    f0, _ = estimate_f0(y[int(0.2 * 48000) :], 48000, fmin=200, fmax=600)
    assert abs(cents(f0, 64)) < 2.0  # /sillage/scale does not detune
    poly = _poly_patch(tmp_path, 4)
    pitched = PatchContext(4, 48000, latent={"pitch_dim": 0, "pitch_scale": 1.0})
    assert load_patch(poly, context=pitched).controller.n_voices == 4
    assert load_patch(poly, context=PatchContext(4, 48000)).controller.n_voices == 1

"""Keyboard voice contracts (mappings.keyboard): glide, legato, release, stealing, bad MIDI."""

from __future__ import annotations

import numpy as np
import pytest

from mappings.errors import InputError
from mappings.keyboard import Keyboard, PlayedVoices, VoiceLatent, VoiceParams, timbre_dims

DT = 256 / 48000  # one frame of the default model


def run(kb: Keyboard, seconds: float, dt: float = DT) -> np.ndarray:
    """Step for ``seconds``; rows of (pitch, loudness, gate) of voice 0."""
    rows = []
    for _ in range(round(seconds / dt)):
        p, loud, g = kb.step(dt)
        rows.append((p[0], loud[0], float(g[0])))
    return np.array(rows)


def test_note_sets_pitch_and_velocity_sets_level() -> None:
    kb = Keyboard(VoiceParams(attack_ms=10.0))
    kb.note(1, 64, 127)
    out = run(kb, 0.05)
    assert out[-1, 0] == 64.0
    assert out[-1, 1] == pytest.approx(1.0)
    kb.note(1, 64, 0)
    kb.note(1, 67, 64)
    out = run(kb, 0.05)
    assert out[-1, 0] == 67.0
    assert out[-1, 1] == pytest.approx(64 / 127)


def test_attack_takes_attack_ms() -> None:
    kb = Keyboard(VoiceParams(attack_ms=50.0))
    kb.note(1, 60, 127)
    out = run(kb, 0.1)
    t = (np.arange(len(out)) + 1) * DT
    assert np.all(np.diff(out[:, 1]) >= 0)
    assert out[t < 0.049, 1].max() < 1.0
    assert np.all(out[t >= 0.0501, 1] == 1.0)


def test_glide_reaches_target_in_glide_ms_and_legato_does_not_retrigger() -> None:
    kb = Keyboard(VoiceParams(attack_ms=5.0, glide_ms=100.0))
    kb.note(1, 60, 100)
    run(kb, 0.1)
    kb.note(1, 72, 100)  # legato: 60 still held
    out = run(kb, 0.2)
    t = (np.arange(len(out)) + 1) * DT
    level = 100 / 127
    assert np.all(out[:, 1] == pytest.approx(level))  # the envelope never dips
    assert np.all(np.diff(out[:, 0]) >= 0)
    assert out[t < 0.099, 0].max() < 72.0
    assert np.all(out[t >= 0.1001, 0] == 72.0)
    # Halfway through the glide, halfway there (constant-time linear glide).
    assert out[np.argmin(np.abs(t - 0.05)), 0] == pytest.approx(66.0, abs=0.4)
    # Release the top note: back to the held 60, legato again.
    kb.note(1, 72, 0)
    out = run(kb, 0.2)
    assert out[-1, 0] == 60.0 and np.all(out[:, 2] == 1.0)
    assert np.all(out[:, 1] == pytest.approx(level))


def test_last_note_priority_returns_to_held_notes() -> None:
    kb = Keyboard(VoiceParams(glide_ms=0.0))
    for key in (60, 64, 67):
        kb.note(1, key, 90)
    assert run(kb, 0.02)[-1, 0] == 67
    kb.note(1, 64, 0)  # a held note that is not sounding: nothing changes
    assert run(kb, 0.02)[-1, 0] == 67
    kb.note(1, 67, 0)
    assert run(kb, 0.02)[-1, 0] == 60
    kb.note(1, 60, 0)
    assert run(kb, 0.02)[-1, 2] == 0.0


def test_release_decays_to_silence_in_release_ms() -> None:
    kb = Keyboard(VoiceParams(attack_ms=1.0, release_ms=300.0))
    kb.note(1, 60, 127)
    run(kb, 0.05)
    kb.note(1, 60, 0)
    out = run(kb, 0.5)
    t = (np.arange(len(out)) + 1) * DT
    assert np.all(np.diff(out[:, 1]) <= 0)
    assert np.all(out[:, 2] == 0)
    assert out[t < 0.29, 1].min() > 0
    assert np.all(out[t > 0.3 + DT, 1] == 0)
    # -20 dB after a third of the release time (exponential: -60 dB at release_ms).
    assert out[np.argmin(np.abs(t - 0.1)), 1] == pytest.approx(0.1, rel=0.05)


def test_note_during_release_starts_from_the_tail() -> None:
    kb = Keyboard(VoiceParams(attack_ms=20.0, release_ms=500.0))
    kb.note(1, 60, 127)
    run(kb, 0.05)
    kb.note(1, 60, 0)
    tail = run(kb, 0.05)[-1, 1]
    kb.note(1, 62, 127)
    out = run(kb, 0.01)
    assert out[0, 1] > tail  # rising from the tail, no drop to 0
    assert out[0, 0] == 62.0  # not legato: no glide


def test_pitch_bend_range() -> None:
    kb = Keyboard(VoiceParams(bend_semitones=2.0))
    kb.note(1, 60, 100)
    kb.bend(1, 8191)
    assert run(kb, DT)[-1, 0] == pytest.approx(62.0, abs=1e-3)
    kb.bend(1, -8192)
    assert run(kb, DT)[-1, 0] == pytest.approx(58.0)
    kb.bend(2, 0)  # another channel: no effect on this note
    assert run(kb, DT)[-1, 0] == pytest.approx(58.0)
    wide = Keyboard(VoiceParams(bend_semitones=12.0))
    wide.note(1, 60, 100)
    wide.bend(1, 4096)
    assert run(wide, DT)[-1, 0] == pytest.approx(66.0)


def test_frame_step_invariance() -> None:
    """Half-size steps give the same curves as whole ones at the shared instants."""
    outs = []
    for div in (1, 2, 4):
        kb = Keyboard(VoiceParams(attack_ms=40.0, release_ms=120.0, glide_ms=80.0))
        rows = []
        for frame in range(60):
            if frame == 2:
                kb.note(1, 60, 100)
            if frame == 20:
                kb.note(1, 67, 80)
            if frame == 40:
                kb.note(1, 67, 0)
                kb.note(1, 60, 0)
            for _ in range(div):
                p, loud, _g = kb.step(DT / div)
            rows.append((p[0], loud[0]))
        outs.append(np.array(rows))
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-9)
    np.testing.assert_allclose(outs[2], outs[0], atol=1e-9)


def test_deterministic() -> None:
    def play() -> np.ndarray:
        kb = Keyboard(VoiceParams(voices=4))
        rng = np.random.default_rng(3)
        rows = []
        for _ in range(300):
            if rng.random() < 0.2:
                kb.note(1, int(rng.integers(40, 80)), int(rng.integers(0, 128)))
            p, loud, g = kb.step(DT)
            rows.append(np.concatenate([p, loud, g]))
        return np.array(rows)

    np.testing.assert_array_equal(play(), play())


def test_poly_chord_and_stealing_oldest() -> None:
    kb = Keyboard(VoiceParams(voices=3, attack_ms=1.0, release_ms=50.0))
    for key in (60, 64, 67):
        kb.note(1, key, 100)
    p, _loud, g = (a.copy() for a in kb.step(DT))
    assert sorted(p) == [60, 64, 67] and g.all()
    kb.note(1, 71, 100)  # no free voice: steals the oldest (60)
    p, _, g = kb.step(DT)
    assert sorted(p) == [64, 67, 71] and g.all()
    kb.note(1, 64, 0)
    kb.note(1, 74, 100)  # the released voice goes before any held one
    p, _, _ = kb.step(DT)
    assert sorted(p) == [67, 71, 74]
    # The same key again retriggers its own voice instead of taking another.
    kb.note(1, 67, 0)
    kb.note(1, 67, 120)
    p, _, g = kb.step(DT)
    assert sorted(p) == [67, 71, 74] and g.all()


def test_poly_prefers_silent_voices() -> None:
    kb = Keyboard(VoiceParams(voices=2, attack_ms=1.0, release_ms=1000.0))
    kb.note(1, 60, 100)
    kb.step(DT)
    kb.note(1, 60, 0)  # voice A releases (long tail)
    kb.step(DT)
    kb.note(1, 62, 100)  # goes to the silent voice B, A's tail rings on
    p, loud, _ = kb.step(DT)
    assert sorted(p) == [60, 62] and (loud > 0).all()


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        ((1, 200, 100), "range"),
        ((1, 60, -1), "range"),
        ((1, 60, 128), "range"),
        ((0, 60, 100), "range"),
        ((17, 60, 100), "range"),
        ((1, 60.5, 100), "range"),
        ((1, float("nan"), 100), "nan"),
        ((1, "C4", 100), "type"),
        ((1, 60), "arity"),
    ],
)
def test_bad_midi_is_rejected_counted_and_changes_nothing(args: tuple, kind: str) -> None:
    kb, twin = Keyboard(VoiceParams(voices=2)), Keyboard(VoiceParams(voices=2))
    for k in (kb, twin):
        k.note(1, 62, 90)
        k.step(DT)
    with pytest.raises(InputError) as err:
        kb.on_midi("/midi/note", args)
    assert err.value.kind == kind
    assert "/midi/note" in str(err.value)
    assert kb.rejected == {kind: 1}
    for _ in range(3):
        for a, b in zip(kb.step(DT), twin.step(DT), strict=True):
            np.testing.assert_array_equal(a, b)


def test_bad_bend_and_params() -> None:
    kb = Keyboard()
    with pytest.raises(InputError, match="value = 9000"):
        kb.bend(1, 9000)
    with pytest.raises(InputError, match="expects 2"):
        kb.on_midi("/midi/bend", (1,))
    assert kb.rejected == {"range": 1, "arity": 1}
    assert not kb.on_midi("/midi/cc", (1, 1, 64))
    with pytest.raises(ValueError, match="voices"):
        VoiceParams(voices=0)
    with pytest.raises(ValueError, match="attack_ms"):
        VoiceParams(attack_ms=-5)


def test_channel_filter_and_reset() -> None:
    kb = Keyboard(VoiceParams(channel=2))
    kb.note(1, 70, 100)
    assert run(kb, 0.02)[-1, 2] == 0
    kb.note(2, 70, 100)
    assert run(kb, 0.02)[-1, 2] == 1
    kb.reset()
    out = run(kb, DT)
    assert out[-1, 1] == 0 and out[-1, 2] == 0


def test_voice_latent_follows_the_card() -> None:
    card = {"pitch_dim": 0, "pitch_scale": 1.0, "pitch_ref_hz": 440.0, "loudness_dim": 1,
            "loudness_ref_db": -30.0, "loudness_db_per_unit": 15.0}  # fmt: skip
    vl = VoiceLatent(card, level_db=-12.0)
    z = np.zeros(8)
    vl.write(z, 81.0, 1.0)
    assert z[0] == pytest.approx(1.0)  # A5 = one octave above the reference
    assert z[1] == pytest.approx(18 / 15)  # -12 dB
    vl.write(z, 57.0, 0.1)
    assert z[0] == pytest.approx(-1.0)
    assert z[1] == pytest.approx(-2 / 15)  # -32 dB
    vl.write(z, 57.0, 0.0)
    assert z[1] == pytest.approx((-72 + 30) / 15)  # the floor: 60 dB below the level
    assert np.all(z[2:] == 0)
    tuned = VoiceLatent({**card, "pitch_scale": 2.0}, tuning_hz=442.0)
    assert tuned.pitch_latent(69.0) == pytest.approx(2 * np.log2(442 / 440))
    rave = VoiceLatent({})
    assert not rave.playable
    z = np.ones(4)
    rave.write(z, 60.0, 1.0)
    assert np.all(z == 1)


def test_played_voices_rows_and_timbre_dims() -> None:
    card = {"pitch_dim": 0, "pitch_scale": 1.0, "pitch_ref_hz": 440.0, "loudness_dim": 1,
            "loudness_ref_db": -30.0, "loudness_db_per_unit": 15.0}  # fmt: skip
    assert timbre_dims(card, 8) == [2, 3, 4, 5, 6, 7]
    assert timbre_dims({}, 4) == [0, 1, 2, 3]
    assert timbre_dims({**card, "timbre_dims": [3, 2, 9]}, 8) == [3, 2]
    pv = PlayedVoices(VoiceParams(voices=2, attack_ms=0.0), card, 4)
    base = np.array([9.0, 9.0, 0.5, -0.5])
    pv.on_midi("/midi/note", (1, 69, 127))
    pv.on_midi("/midi/note", (1, 81, 127))
    z = pv.latents(0.0, base)
    z = pv.latents(DT, base)
    assert sorted(z[:, 0]) == pytest.approx([0.0, 1.0])
    assert z[:, 1] == pytest.approx([18 / 15, 18 / 15])
    np.testing.assert_array_equal(z[:, 2:], [[0.5, -0.5], [0.5, -0.5]])
    rave = PlayedVoices(VoiceParams(), {}, 4)
    assert not rave.playable
    rave.on_midi("/midi/note", (1, 60, 100))
    np.testing.assert_array_equal(rave.latents(0.0, base), [base])


def test_sustain_pedal_holds_released_keys() -> None:
    for voices in (1, 3):
        kb = Keyboard(VoiceParams(voices=voices, attack_ms=1.0, release_ms=50.0, glide_ms=0.0))
        assert kb.on_midi("/midi/cc", (1, 64, 127))
        kb.note(1, 60, 100)
        kb.note(1, 60, 0)  # key up, pedal down: sounds on
        out = run(kb, 0.2)
        assert out[-1, 2] == 1 and out[-1, 1] > 0.7, voices
        assert kb.on_midi("/midi/cc", (1, 64, 0))  # pedal up: released
        out = run(kb, 0.2)
        assert out[-1, 1] == 0 and out[-1, 2] == 0, voices
    assert not kb.on_midi("/midi/cc", (1, 1, 64))  # other controls are not the voice's
    with pytest.raises(InputError, match="control = 300"):
        kb.on_midi("/midi/cc", (1, 300, 1))
    assert kb.rejected == {"range": 1}


def test_sustain_in_mono_keeps_the_note_for_legato() -> None:
    kb = Keyboard(VoiceParams(voices=1, glide_ms=0.0))
    kb.on_midi("/midi/cc", (1, 64, 100))
    kb.note(1, 60, 100)
    kb.note(1, 60, 0)
    kb.note(1, 67, 100)
    kb.note(1, 67, 0)
    assert run(kb, 0.02)[-1, 0] == 67
    kb.on_midi("/midi/cc", (1, 64, 0))
    out = run(kb, 0.02)
    assert out[-1, 2] == 0  # both released with the pedal

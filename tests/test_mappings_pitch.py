"""Scale quantiser and pitch conversions (mappings.pitch)."""

from __future__ import annotations

import numpy as np
import pytest

from mappings.pitch import (
    SCALES,
    Quantiser,
    Scale,
    SensorPitch,
    hz_to_midi,
    latent_to_midi,
    midi_to_hz,
    midi_to_latent,
    note_number,
)


def test_note_names() -> None:
    assert note_number("C4") == 60
    assert note_number("A4") == 69
    assert note_number("Bb3") == 58
    assert note_number("F#") % 12 == 6
    assert note_number(61.5) == 61.5
    with pytest.raises(ValueError, match="not a note"):
        note_number("H2")


def test_hz_and_latent_round_trip() -> None:
    assert midi_to_hz(69) == pytest.approx(440.0)
    assert midi_to_hz(69, tuning_hz=442.0) == pytest.approx(442.0)
    assert midi_to_hz(57) == pytest.approx(220.0)
    assert hz_to_midi(261.6256) == pytest.approx(60.0, abs=1e-4)
    # The default model's pitch latent: z0 = log2(f0 / 440).
    assert midi_to_latent(69) == pytest.approx(0.0)
    assert midi_to_latent(81) == pytest.approx(1.0)
    assert midi_to_latent(45, pitch_scale=2.0) == pytest.approx(-4.0)
    # A4 tuned to 442 Hz is log2(442/440) octaves above the model's reference.
    assert midi_to_latent(69, tuning_hz=442.0) == pytest.approx(np.log2(442 / 440))
    m = np.linspace(20, 110, 31)
    for kw in ({}, {"pitch_scale": 0.5, "pitch_ref_hz": 261.63, "tuning_hz": 415.0}):
        z = midi_to_latent(m, **kw)
        np.testing.assert_allclose(latent_to_midi(z, **kw), m, atol=1e-9)
        np.testing.assert_allclose(
            midi_to_hz(m, tuning_hz=kw.get("tuning_hz", 440.0)),
            kw.get("pitch_ref_hz", 440.0) * 2 ** (z / kw.get("pitch_scale", 1.0)),
            rtol=1e-9,
        )


@pytest.mark.parametrize("name", sorted(SCALES))
def test_named_scales_land_on_their_degrees(name: str) -> None:
    scale = Scale.named(name, root="D")
    x = np.linspace(30.0, 100.0, 2001)
    q = scale.nearest(x)
    pcs = np.round((q - 62) * 100) % 1200
    assert set(np.unique(pcs)) <= set(SCALES[name])
    # Nothing is further than half the widest gap of the scale.
    gaps = np.diff([*SCALES[name], 1200.0])
    assert np.max(np.abs(q - x)) <= gaps.max() / 200 + 1e-9
    # Already in the scale: unchanged.
    np.testing.assert_allclose(scale.nearest(q), q, atol=1e-9)


def test_chromatic_is_rounding() -> None:
    x = np.array([59.4, 59.6, 60.0, 60.49, 60.51, -3.2, 127.7])
    np.testing.assert_allclose(Scale.named("chromatic").nearest(x), [59, 60, 60, 60, 61, -3, 128])


def test_major_c() -> None:
    s = Scale.named("major", root="C")
    assert s.nearest(61.0) == 60.0  # C# between C and D: ties go down
    assert s.nearest(61.2) == 62.0
    assert s.nearest(65.4) == 65.0  # F
    assert s.nearest(70.6) == 71.0  # B


def test_custom_cents_and_non_octave() -> None:
    # A 5-step equal-tempered scale given as cents.
    s = Scale.from_spec([0, 240, 480, 720, 960], root=60)
    assert s.nearest(62.3) == pytest.approx(62.4)
    assert s.nearest(70.7) == pytest.approx(69.6)  # 960 c; the next degree is 72 (1200 c)
    assert s.nearest(70.9) == pytest.approx(72.0)
    # Bohlen-Pierce-like period of 1902 cents.
    bp = Scale([0, 146.3], root=60, period_cents=1902.0)
    assert bp.nearest(60 + 19.02 - 0.1) == pytest.approx(60 + 19.02)
    with pytest.raises(ValueError, match="unknown scale"):
        Scale.from_spec("lydian-dominant-ish")
    with pytest.raises(ValueError, match="finite"):
        Scale([0, float("nan")])


def test_hysteresis_stops_chatter() -> None:
    scale = Scale.named("chromatic")
    # A sensor hovering around the midpoint between 60 and 61, with noise.
    rng = np.random.default_rng(0)
    x = 60.5 + 0.08 * rng.standard_normal(500)
    plain = Quantiser(scale)
    sticky = Quantiser(scale, hysteresis_cents=30.0)
    out_plain = np.array([plain(v) for v in x])
    out_sticky = np.array([sticky(v) for v in x])
    assert np.count_nonzero(np.diff(out_plain)) > 50
    assert np.count_nonzero(np.diff(out_sticky)) <= 2
    # A real move still changes the note, at once.
    assert sticky(62.0) == 62.0
    assert sticky(61.8) == 62.0


def test_strength_and_nan() -> None:
    q = Quantiser(Scale.named("major", root="C"), strength=0.5)
    assert q(61.6) == pytest.approx(61.8)  # halfway from 61.6 to D (62)
    assert q(float("nan")) == 62.0  # held note, no NaN into the latent
    assert Quantiser(Scale.named("major"), strength=0.0)(61.3) == pytest.approx(61.3)
    assert np.isnan(Quantiser(Scale.named("major"))(float("nan")))
    with pytest.raises(ValueError, match="strength"):
        Quantiser(Scale.named("major"), strength=1.5)


def test_sensor_pitch_from_patch_table() -> None:
    sp = SensorPitch.from_table(
        {"span": [-1.0, 1.0], "notes": ["A2", "A4"], "scale": "pentatonic_minor", "root": "A",
         "hysteresis_cents": 30.0}
    )  # fmt: skip
    assert sp(-1.0) == 45.0 and sp(1.0) == 69.0
    assert sp(-5.0) == 45.0 and sp(5.0) == 69.0  # clipped to the notes
    x = np.linspace(-1, 1, 400)
    out = np.array([sp(v) for v in x])
    assert set(np.unique(np.round((out - 57) % 12))) <= {0, 3, 5, 7, 10}
    assert np.all(np.diff(out) >= 0)  # monotonic sweep, no chatter back
    cont = SensorPitch.from_table({"span": [1.0, 0.0], "notes": [60, 72], "scale": "none"})
    assert cont(0.25) == pytest.approx(69.0)  # decreasing span, continuous
    with pytest.raises(ValueError, match="span"):
        SensorPitch([0.0, 0.0], [60, 72])

"""models.pitchtrack: f0 labels for user audio (training time)."""

from __future__ import annotations

import numpy as np
import pytest

from models.pitchtrack import label_f0, resample_track

SR = 48000
HOP = 256


def _saw(f0_hz: np.ndarray) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(f0_hz) / SR
    return sum(np.sin(h * phase) / h for h in range(1, 20)).astype(np.float32) * 0.3


def test_steady_and_gliding_tones_within_a_few_cents() -> None:
    n = SR // 2
    for f in (65.4, 220.0, 1046.5):
        f0, prob = label_f0(_saw(np.full(n, f)), SR, HOP)
        assert f0.shape == prob.shape == (n // HOP,)
        assert f0.dtype == np.float32
        inner = slice(4, -4)
        cents = 1200 * np.log2(f0[inner] / f)
        assert np.median(np.abs(cents)) < 5, f
        assert np.mean(prob[inner] > 0.5) > 0.95
    # An octave glide, read at each frame's last sample.
    glide = 110 * 2 ** (np.arange(n) / n)
    f0, _ = label_f0(_saw(glide), SR, HOP)
    ref = glide[(np.arange(n // HOP) + 1) * HOP - 1]
    assert np.median(np.abs(1200 * np.log2(f0[4:-4] / ref[4:-4]))) < 10


def test_noise_and_silence_are_unvoiced_and_filled() -> None:
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(SR // 2).astype(np.float32) * 0.3
    f0, prob = label_f0(noise, SR, HOP)
    assert np.mean(prob > 0.5) < 0.05
    assert np.all(np.isfinite(f0)) and np.all(f0 > 0)
    f0, prob = label_f0(np.zeros(SR // 4), SR, HOP, fill_hz=440.0)
    assert np.all(prob == 0) and np.all(f0 == 440.0)


def test_gaps_carry_the_neighbouring_pitch_and_stereo_is_mixed() -> None:
    n = SR // 2
    x = _saw(np.full(n, 330.0))
    x[n // 3 : 2 * n // 3] = 0.0
    f0, prob = label_f0(np.stack([x, x]), SR, HOP)
    gap = slice(n // 3 // HOP + 4, 2 * n // 3 // HOP - 4)
    assert np.all(prob[gap] == 0)
    np.testing.assert_allclose(f0[gap], 330.0, rtol=0.01)


def test_shapes_and_errors() -> None:
    f0, prob = label_f0(np.zeros(100), SR, HOP)
    assert f0.shape == prob.shape == (0,)
    with pytest.raises(ValueError, match="hop"):
        label_f0(np.zeros(1000), SR, 0)
    with pytest.raises(ValueError, match="audio must be"):
        label_f0(np.zeros((1, 2, 3)), SR, HOP)
    f0, prob = resample_track(
        np.array([0.0, 0.1]), np.array([0.0, np.nan]), np.array([0.2, 0.4]),
        n_frames=3, hop=HOP, samplerate=SR, fill_hz=100.0,
    )  # fmt: skip
    assert np.all(f0 == 100.0) and np.all(prob == 0.0)

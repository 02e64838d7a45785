"""Dragging on the map of a model with a pitch dimension changes timbre, never the pitch played.

The shipped default declares ``timbre_dims`` in its card and ships a timbre map: an offline
render sets the pitch latent to A5, then moves on the map; the f0 of the sound stays A5.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from models.playability import estimate_f0
from tests.conftest import ROOT

SCORE = [
    {"t": 0.0, "address": "/sillage/latent/0", "args": [1.0]},  # A5 = 880 Hz
    {"t": 0.0, "address": "/sillage/latent/1", "args": [1.0]},  # -15 dB
    {"t": 0.5, "address": "/sillage/xy", "args": [0.2, 0.3]},
    {"t": 1.0, "address": "/sillage/xy", "args": [0.8, 0.7]},
]


def test_xy_moves_timbre_and_keeps_the_pitch(tmp_path: Path) -> None:
    score = tmp_path / "score.jsonl"
    score.write_text("".join(json.dumps(row) + "\n" for row in SCORE))
    out = tmp_path / "out.wav"
    done = subprocess.run([sys.executable, "run_instrument.py", "--offline", str(out), "--score",
                           str(score), "--seconds", "1.5", "--no-ui"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    audio, sr = sf.read(out, dtype="float64")
    halves = [audio[int(0.8 * sr) : int(1.0 * sr)], audio[int(1.3 * sr) : int(1.5 * sr)]]
    f0s = [estimate_f0(h, sr)[0] for h in halves]
    for f0 in f0s:
        assert abs(1200 * np.log2(f0 / 880.0)) < 25, f0s
    # ... and the two map points sound different (timbre moved).
    spectra = [np.abs(np.fft.rfft(h * np.hanning(len(h)))) for h in halves]
    a, b = (s / s.sum() for s in spectra)
    assert np.abs(a - b).sum() > 0.1

"""``python -m instrument.ab``: one score through two models → two WAVs, a PNG and a table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import ROOT

SCORE = [
    {"t": 0.0, "address": "/sillage/latent", "args": [0.5, -0.5, 0.0, 1.0]},
    {"t": 0.3, "address": "/sillage/latent/0", "args": [2.0]},
    {"t": 0.6, "address": "/sillage/latent/2", "args": [-1.5]},
]


@pytest.fixture()
def score(tmp_path: Path) -> Path:
    path = tmp_path / "score.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in SCORE))
    return path


def _ab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "instrument.ab", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_ab_writes_both_wavs_the_picture_and_the_table(
    score: Path, mono_model: Path, stereo_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ab"
    done = _ab("--score", str(score), "--models", str(mono_model), str(stereo_model),
               "--out", str(out), "--seconds", "1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    a, b = out / f"A-{mono_model.stem}.wav", out / f"B-{stereo_model.stem}.wav"
    for wav in (a, b):
        audio, sr = sf.read(wav, dtype="float32", always_2d=True)
        assert sr == 48000 and len(audio) == 48000 and np.abs(audio).max() > 1e-3
    png = (out / "ab.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    result = json.loads((out / "ab.json").read_text())
    rows = result["descriptors"]
    assert list(rows) == [f"A: {mono_model.stem}", f"B: {stereo_model.stem}"]
    for row in rows.values():
        assert row["seconds"] == 1.0 and row["clicks"] == 0
        assert row["centroid_hz_median"] > 0 and row["pitch_hz_median"] is None  # no card
    assert result["multiscale_distance"] > 0.1  # two different models sound different
    assert "multiscale spectral distance" in (out / "ab.md").read_text()
    assert "| rms_db |" in done.stdout

    # The same model twice: the renders are bit-identical, the distance is zero.
    same = tmp_path / "same"
    done = _ab("--score", str(score), "--models", str(mono_model), str(mono_model),
               "--out", str(same), "--seconds", "1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    x = sf.read(same / f"A-{mono_model.stem}.wav")[0]
    y = sf.read(same / f"B-{mono_model.stem}.wav")[0]
    np.testing.assert_array_equal(x, y)
    assert json.loads((same / "ab.json").read_text())["multiscale_distance"] == 0.0


def test_ab_bad_input_names_the_problem(score: Path, mono_model: Path, tmp_path: Path) -> None:
    done = _ab("--score", str(tmp_path / "nope.jsonl"), "--models", str(mono_model),
               str(mono_model), "--out", str(tmp_path / "x"))  # fmt: skip
    assert done.returncode == 1 and "score" in done.stderr and "not found" in done.stderr
    done = _ab("--score", str(score), "--models", str(mono_model), str(tmp_path / "B.ts"),
               "--out", str(tmp_path / "y"))  # fmt: skip
    assert done.returncode == 1 and "B.ts' not found" in done.stderr
    corrupt = tmp_path / "corrupt.ts"
    corrupt.write_bytes(b"not a model")
    done = _ab("--score", str(score), "--models", str(corrupt), str(mono_model),
               "--out", str(tmp_path / "z"))  # fmt: skip
    assert done.returncode == 1 and "rendering corrupt.ts failed" in done.stderr

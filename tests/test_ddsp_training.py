"""DDSP training data: exact corpus f0 labels, label loading, the pitch-tracker hook, a step."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from models import corpus
from models.config import make_config
from models.data import AudioDataset
from models.ddsp_train import load_labels, resample_labels
from models.errors import ModelsError
from models.playability import estimate_f0
from models.train import DDSPTrainer, Dist

pytestmark = [
    pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning"),
    pytest.mark.usefixtures("one_torch_thread"),
]


def test_labelled_render_is_the_same_audio_and_labels_match_it() -> None:
    a = corpus.render_file(np.random.default_rng(7), "vowel", seconds=4.0)
    b, f0, voiced = corpus.render_file_labelled(np.random.default_rng(7), "vowel", seconds=4.0)
    np.testing.assert_array_equal(a, b)
    assert len(f0) == len(voiced) == len(b) // corpus.LABEL_HOP
    assert 0.2 < voiced.mean() < 1.0
    # Check the labels against the audio on the longest voiced stretch.
    on = np.flatnonzero(voiced > 0)
    runs = np.split(on, np.flatnonzero(np.diff(on) > 1) + 1)
    run = max(runs, key=len)[3:-3]
    seg = b[run[0] * 256 : run[-1] * 256]
    est, _ = estimate_f0(seg, corpus.SR, fmin=25)
    assert abs(1200 * np.log2(est / np.median(f0[run]))) < 20


def test_unpitched_families_are_unvoiced() -> None:
    rng = np.random.default_rng(0)
    info: dict = {}
    for _ in range(8):
        info.clear()
        corpus.hit(rng, 0.3, info)
        kick_or_tom = "f0" in info
        if not kick_or_tom:
            return  # a snare or hat: no f0 reported
    pytest.fail("eight hits in a row reported an f0")


def test_resample_labels_to_another_hop() -> None:
    f0 = np.arange(100, dtype=np.float32) + 100
    voiced = np.ones(100, np.float32)
    f2, v2 = resample_labels(f0, voiced, 128, 48000, 256, 48000)
    assert len(f2) == 50 and f2[0] == f0[1] and v2.all()


def _tones(folder: Path, labels: bool) -> Path:
    folder.mkdir(parents=True)
    t = np.arange(int(0.5 * 48000)) / 48000
    for i, f in enumerate((220.0, 330.0)):
        path = folder / f"tone{i}.wav"
        sf.write(path, (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32), 48000)
        if labels:
            n = len(t) // 256
            corpus.write_labels(path, np.full(n, f), np.ones(n), 256, 48000)
    return folder


def test_a_training_step_runs_and_the_pitch_loss_is_finite(tmp_path: Path) -> None:
    cfg = make_config("ddsp-tiny")
    data = AudioDataset.from_folder(
        _tones(tmp_path / "a", True),
        samplerate=48000,
        channels=1,
        n_samples=cfg.n_samples,
        verbose=False,
    )
    trainer = DDSPTrainer(cfg, data, tmp_path / "run", device=torch.device("cpu"), dist=Dist())
    trainer.total_steps = 3
    logs = [trainer.train_step() for _ in range(3)]
    assert all(np.isfinite(v) for row in logs for v in row.values())
    assert logs[0]["pitch_ce"] > 0


def test_unlabelled_audio_uses_the_pitch_tracker_or_says_how_to_label(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _tones(tmp_path / "u", False)
    data = AudioDataset.from_folder(
        folder, samplerate=48000, channels=1, n_samples=4096, verbose=False
    )
    monkeypatch.setitem(sys.modules, "models.pitchtrack", None)  # import fails
    with pytest.raises(ModelsError, match=r"f0\.npz"):
        load_labels(data, 256, tmp_path / "cache", verbose=False)

    class FakeTracker:
        @staticmethod
        def label_f0(audio: np.ndarray, sr: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
            n = len(audio) // hop
            return np.full(n, 123.0), np.ones(n)

    monkeypatch.setitem(sys.modules, "models.pitchtrack", FakeTracker)
    labels = load_labels(data, 256, tmp_path / "cache", verbose=False)
    assert all((f0 == 123.0).all() and v.all() for f0, v in labels)
    assert len(list((tmp_path / "cache").glob("*.f0.npz"))) == 2  # cached for the next run


def test_unlabelled_audio_is_labelled_by_models_pitchtrack(tmp_path: Path) -> None:
    from models.pitchtrack import _import_pyworld

    assert _import_pyworld().__version__  # a dependency: missing, it must fail here, not skip
    data = AudioDataset.from_folder(
        _tones(tmp_path / "u", False), samplerate=48000, channels=1, n_samples=4096, verbose=False
    )
    labels = load_labels(data, 256, tmp_path / "cache", verbose=False)
    for (f0, voiced), want in zip(labels, (220.0, 330.0), strict=True):
        steady = f0[10:-10][voiced[10:-10] > 0]
        assert len(steady) > 0.8 * (len(f0) - 20)
        assert np.all(np.abs(1200 * np.log2(steady / want)) < 10)


def test_pitchtune_tones_are_labelled_with_their_f0() -> None:
    from models.ddsp_pitchtune import random_tones

    x, f0, voiced = random_tones(np.random.default_rng(1), 4, 16384, 48000, 256)
    assert x.shape == (4, 1, 16384) and f0.shape == voiced.shape == (4, 64)
    for i in range(4):
        est, aper = estimate_f0(x[i, 0, 4096:12288], 48000, fmin=25)
        if aper < 0.2:  # a clean periodic stretch: the label is its pitch
            assert abs(1200 * np.log2(est / np.median(f0[i, 16:48]))) < 30

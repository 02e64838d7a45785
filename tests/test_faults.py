"""Fault isolation: a bad frame (NaN, inf, a raise in decode) never silences the show.

A real TorchScript fixture (:class:`tests.modelfixtures.FaultModel`) fails on command: its
latent dimension 3 puts out NaN, poisons its own streaming state, or makes ``decode`` raise.
Offline renders are deterministic, so these tests check the sound sample by sample.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from instrument.engine.offline import render
from instrument.engine.output_safety import DCBlocker, SafetyLimiter
from instrument.engine.runtime import ModelRuntime
from instrument.link.events import Event
from instrument.metrics import Metrics, Reporter
from instrument.patch import PatchContext, load_patch
from tests.conftest import ROOT
from tests.modelfixtures import fault_model

SR = 48000


@pytest.fixture(scope="module")
def fault_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fault_model(tmp_path_factory.mktemp("faults") / "fault.ts")


def _render(
    path: Path, score: list[Event], seconds: float = 1.0
) -> tuple[np.ndarray, Reporter, Metrics]:
    rt = ModelRuntime(path)
    patch = load_patch("default", context=PatchContext(rt.info.latent_size, rt.info.samplerate))
    reporter, metrics = Reporter(), Metrics()
    events = [Event(0.0, "/sillage/smoothing_ms", (0.0,)), *score]
    audio = render(rt, patch, events, seconds=seconds, reporter=reporter, metrics=metrics)
    return audio[:, 0], reporter, metrics


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def _sound_back_within(audio: np.ndarray, after_s: float, within_s: float) -> None:
    """Steady sound again ``within_s`` after ``after_s``: every 5 ms window from there on is
    as loud as the sound before the fault (the fixture plays a steady tone)."""
    ref = _rms(audio[int(0.05 * SR) : int(0.09 * SR)])
    start = int((after_s + within_s) * SR)
    win = int(0.005 * SR)
    levels = [_rms(audio[i : i + win]) for i in range(start, len(audio) - win, win)]
    assert ref > 0.05, ref
    assert min(levels) > 0.5 * ref, (ref, min(levels))


@pytest.mark.parametrize(
    ("poison", "kind"),
    [(1.0, "nan out"), (2.0, "nan in the state"), (-1.0, "raise"), (-2.0, "broken until reset")],
)
def test_a_bad_moment_is_replaced_counted_reported_and_the_sound_comes_back(
    fault_path: Path, poison: float, kind: str
) -> None:
    score = [Event(0.1, "/sillage/latent/3", (poison,)), Event(0.12, "/sillage/latent/3", (0.0,))]
    audio, reporter, metrics = _render(fault_path, score)
    assert np.isfinite(audio).all()
    assert np.abs(audio).max() <= 1.0
    assert metrics.bad_frames >= 1, kind
    assert reporter.faults["bad_frame"] >= 1
    if poison < 0:
        assert metrics.decode_errors == metrics.bad_frames
    else:
        assert metrics.decode_errors == 0
    # replaced by silence while it lasted (after a 3 ms fade of the last good sample)
    assert _rms(audio[int(0.105 * SR) : int(0.118 * SR)]) < 1e-3
    # and the sound is back within 100 ms of the last bad control
    _sound_back_within(audio, 0.12, 0.1)
    assert reporter.faults["recovered"] >= 1


def test_no_click_into_or_out_of_a_bad_frame(fault_path: Path) -> None:
    score = [Event(0.1, "/sillage/latent/3", (1.0,)), Event(0.12, "/sillage/latent/3", (0.0,))]
    audio, _, _ = _render(fault_path, score, seconds=0.3)
    # the fixture's tone moves at most ~0.04 per sample; a jump to or from silence would not
    assert np.abs(np.diff(audio)).max() < 0.08


def test_a_model_that_stays_bad_falls_back_to_the_previous_model(
    fault_path: Path, mono_model: Path
) -> None:
    score = [
        Event(0.05, "/sillage/model", (str(fault_path),)),
        Event(0.2, "/sillage/latent/3", (-2.0,)),  # broken for good: every reset breaks again
    ]
    rt = ModelRuntime(mono_model)
    patch = load_patch("default", context=PatchContext(rt.info.latent_size, rt.info.samplerate))
    reporter, metrics = Reporter(), Metrics()
    events = [Event(0.0, "/sillage/smoothing_ms", (0.0,)), *score]
    audio = render(rt, patch, events, seconds=1.0, reporter=reporter, metrics=metrics)[:, 0]
    assert np.isfinite(audio).all()
    assert metrics.fallbacks == 1
    assert reporter.faults["model_failed"] == 1
    # back on the mono model (the same tone): sound from 0.2 + 0.25 s (the fallback time) on
    _sound_back_within(audio, 0.45, 0.05)


def test_filters_never_keep_nan_and_reset() -> None:
    dc = DCBlocker(samplerate=SR, channels=1)
    bad = np.full((64, 1), np.inf, dtype=np.float32)  # what the loop's guard never lets by
    assert not dc.process(bad).any()  # its state went NaN: reset, a silent frame
    ok = dc.process(np.full((64, 1), 0.5, dtype=np.float32))
    assert np.isfinite(ok).all() and ok[0, 0] == pytest.approx(0.5)
    lim = SafetyLimiter(samplerate=SR)
    lim.process(np.full((64, 1), np.nan, dtype=np.float32))
    assert lim.gain == 1.0 and lim.bad_frames == 1


def test_offline_cli_reports_bad_frames_and_exits_non_zero(
    fault_path: Path, tmp_path: Path
) -> None:
    score = tmp_path / "score.jsonl"
    score.write_text(
        '{"t": 0.0, "address": "/sillage/smoothing_ms", "args": [0]}\n'
        '{"t": 0.1, "address": "/sillage/latent/3", "args": [-1]}\n'
        '{"t": 0.12, "address": "/sillage/latent/3", "args": [0]}\n'
    )
    out = tmp_path / "out.wav"
    res = subprocess.run(
        [sys.executable, "run_instrument.py", "--offline", str(out), "--seconds", "0.5",
         "--model", str(fault_path), "--score", str(score)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert "bad frames" in res.stdout and "decode errors" in res.stdout, res.stdout
    assert "raised RuntimeError" in res.stderr, res.stderr
    sr, audio = wavfile.read(out)  # the whole file is there, with silence where it failed
    assert sr == SR and len(audio) == SR // 2 and np.isfinite(audio).all()


def test_a_swap_to_another_sample_rate_crossfades(mono_model: Path, tmp_path: Path) -> None:
    from tests.modelfixtures import osc_model

    other = osc_model(tmp_path / "osc-44k.ts", latent_size=4, ratio=64, sr=44100, channels=1)
    rt = ModelRuntime(mono_model)
    patch = load_patch("default", context=PatchContext(rt.info.latent_size, rt.info.samplerate))
    events = [Event(0.1, "/sillage/model", (str(other),))]
    audio = render(rt, patch, events, seconds=0.3, samplerate=SR)[:, 0]
    assert np.isfinite(audio).all()
    # no step at the swap: the sample-to-sample change stays what the tone itself does
    steps = np.abs(np.diff(audio))
    assert steps.max() < 2.5 * steps[: int(0.09 * SR)].max(), steps.max()
    assert _rms(audio[int(0.15 * SR) :]) > 0.05  # the new model plays


def test_a_model_frame_larger_than_the_prebuffer_raises_it_and_says_so(mono_model: Path) -> None:
    from instrument.engine.audio_out import ClockOutput
    from instrument.engine.worker import DecodeWorker
    from instrument.link.events import EventQueue
    from instrument.link.pipe import QueueSource

    rt = ModelRuntime(mono_model)
    patch = load_patch("default", context=PatchContext(rt.info.latent_size, rt.info.samplerate))
    out = ClockOutput(samplerate=SR, channels=1, blocksize=256, capacity=8192)
    reporter = Reporter()
    worker = DecodeWorker(
        rt, patch, out, prebuffer=32, source=QueueSource(EventQueue()), reporter=reporter,
        record_dir=None,
    )  # fmt: skip
    assert worker.prebuffer == 128  # two frames of 64
    assert reporter.faults["prebuffer"] == 1
    assert "--prebuffer 128" in reporter.unsent[-1]


def test_a_model_frame_as_large_as_the_prebuffer_keeps_it(mono_model: Path) -> None:
    """Frame == prebuffer does not underrun by construction (the ring swings between one and
    two frames): the prebuffer asked for is kept, which is what makes ≤ 10 ms reachable."""
    from instrument.engine.audio_out import ClockOutput
    from instrument.engine.worker import DecodeWorker
    from instrument.link.events import EventQueue
    from instrument.link.pipe import QueueSource

    rt = ModelRuntime(mono_model)
    patch = load_patch("default", context=PatchContext(rt.info.latent_size, rt.info.samplerate))
    out = ClockOutput(samplerate=SR, channels=1, blocksize=64, capacity=8192)
    reporter = Reporter()
    worker = DecodeWorker(
        rt, patch, out, prebuffer=64, source=QueueSource(EventQueue()), reporter=reporter,
        record_dir=None,
    )  # fmt: skip
    assert worker.prebuffer == 64 and "prebuffer" not in reporter.faults

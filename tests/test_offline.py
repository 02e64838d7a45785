"""Offline render: determinism, block-size invariance, trajectory guards, safety limiter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from instrument.engine.offline import render
from instrument.engine.output_safety import SafetyLimiter
from instrument.engine.runtime import ModelRuntime
from instrument.engine.trajectory import Trajectory
from instrument.link.events import Event, ScoreError, read_score
from instrument.metrics import Reporter
from instrument.patch import PatchContext, load_patch
from tests.conftest import ROOT
from tests.modelfixtures import save

GESTURE = [
    Event(0.05, "/sillage/latent/0", (2.0,)),
    Event(0.12, "/sillage/latent", (-1.5, 1.0, 2.0)),
    Event(0.2, "/sillage/smoothing_ms", (5.0,)),
    Event(0.21, "/sillage/latent/2", (-3,)),  # an int: any numeric type
    Event(0.3, "/sillage/gain_db", (-6.0,)),
    Event(0.33, "/sillage/latent/1", (float("nan"),)),  # rejected, counted
]


@pytest.fixture()
def runtime(mono_model: Path) -> ModelRuntime:
    return ModelRuntime(mono_model)


def _patch(rt: ModelRuntime):
    return load_patch("default", context=PatchContext(rt.info.latent_size, rt.info.samplerate))


@pytest.mark.parametrize("blocksize", [64, 65, 256, 2048, 2049])
def test_render_is_bit_identical_whatever_the_blocksize(
    runtime: ModelRuntime, blocksize: int
) -> None:
    ref = render(runtime, _patch(runtime), GESTURE, seconds=0.5, blocksize=256, seed=3)
    out = render(runtime, _patch(runtime), GESTURE, seconds=0.5, blocksize=blocksize, seed=3)
    assert out.shape == (24000, 1)
    assert out.tobytes() == ref.tobytes()


def test_events_change_the_sound_and_bad_ones_are_counted(runtime: ModelRuntime) -> None:
    reporter = Reporter()
    quiet = render(runtime, _patch(runtime), [], seconds=0.5, seed=0)
    moved = render(runtime, _patch(runtime), GESTURE, seconds=0.5, seed=0, reporter=reporter)
    assert not np.array_equal(quiet, moved)
    assert reporter.counts == {"nan": 1}
    # before the first event both renders are the same sound
    first = int(0.05 * 48000)
    assert np.array_equal(quiet[:first], moved[:first])


def test_cli_render_twice_gives_identical_files(mono_model: Path, tmp_path: Path) -> None:
    score = tmp_path / "score.jsonl"
    score.write_text(
        '{"t": 0.1, "address": "/sillage/latent/0", "args": [1.5]}\n'
        "# comments and blank lines are skipped\n\n"
        '{"t": 0.4, "address": "/sillage/latent", "args": [-1, 2, 0, 0]}\n'
    )
    outs = []
    for i, block in enumerate((65, 2049)):
        out = tmp_path / f"out{i}.wav"
        res = subprocess.run(
            [
                sys.executable,
                "run_instrument.py",
                "--offline",
                str(out),
                "--seconds",
                "1",
                "--model",
                str(mono_model),
                "--score",
                str(score),
                "--seed",
                "7",
                "--blocksize",
                str(block),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stderr
        assert "rendered 1 s" in res.stdout
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    audio, sr = sf.read(tmp_path / "out0.wav")
    assert sr == 48000 and len(audio) == 48000 and np.sqrt(np.mean(audio**2)) > 0.01


def test_render_resamples_to_another_rate(runtime: ModelRuntime) -> None:
    out = render(runtime, _patch(runtime), [], seconds=0.5, samplerate=44100, seed=0)
    assert out.shape == (22050, 1)
    # the 220 Hz fundamental of the fixture stays at 220 Hz after resampling
    x = out[:8192, 0] * np.hanning(8192)
    f = np.fft.rfftfreq(8192, 1 / 44100)[np.argmax(np.abs(np.fft.rfft(x)))]
    assert abs(f - 220) < 10


def test_trajectory_smooths_with_its_time_constant_and_clamps() -> None:
    frame_s = 64 / 48000
    tr = Trajectory(2, frame_s)
    n = round(0.1 / frame_s)  # one time constant of 100 ms
    for _ in range(n):
        z = tr.step(np.array([1.0, 100.0]), 100.0)
    assert z[0] == pytest.approx(1 - np.exp(-1), abs=0.01)
    for _ in range(20 * n):
        z = tr.step(np.array([1.0, 100.0]), 100.0)
    assert z[1] == pytest.approx(8.0)  # clamped to the latent limit
    held = tr.step(np.array([np.nan, 0.0]), 0.0).copy()
    assert tr.rejected == 1 and held[1] == pytest.approx(8.0)  # the whole bad target is refused
    assert tr.step(np.array([np.inf, 0.0]), 0.0)[1] == pytest.approx(8.0) and tr.rejected == 2


def test_trajectory_time_constant_follows_a_new_frame_length() -> None:
    """A swap to a model with frames 4x longer (same latent size): 100 ms is still 100 ms."""
    tr = Trajectory(1, 64 / 48000)
    tr.step(np.array([0.0]), 100.0)  # coefficients computed for 64-sample frames
    tr.set_frame(256 / 48000)
    n = round(0.1 / (256 / 48000))
    for _ in range(n):
        z = tr.step(np.array([1.0]), 100.0)
    assert z[0] == pytest.approx(1 - np.exp(-1), abs=0.02)


def test_panic_fades_out_and_returns_home(runtime: ModelRuntime) -> None:
    events = [Event(0.0, "/sillage/latent", (3.0, 2.0, 0.0, 0.0)), Event(0.5, "/sillage/panic", ())]
    out = render(runtime, _patch(runtime), events, seconds=1.2, seed=0)[:, 0]
    sr = 48000
    before = np.abs(out[int(0.4 * sr) : int(0.5 * sr)]).max()
    env = np.sqrt(np.mean(out[int(0.5 * sr) : int(0.7 * sr)].reshape(-1, 96) ** 2, axis=1))
    silent = env.min()  # the quietest 2 ms between the fade-out and the fade-in
    after = out[int(1.0 * sr) : int(1.2 * sr)]
    assert before > 0.05
    assert silent < 1e-2 * before  # -40 dB: the fade reached silence
    assert np.abs(after).max() > 0.01  # back, at the centre latent
    # at the centre (pitch dim 0 = 0) the fixture plays 220 Hz again
    x = after[:8192] * np.hanning(8192)
    f = np.fft.rfftfreq(8192, 1 / sr)[np.argmax(np.abs(np.fft.rfft(x)))]
    assert abs(f - 220) < 8
    assert np.abs(np.diff(out)).max() < 0.2  # no click on the way


def test_limiter_keeps_peaks_under_the_ceiling_and_zeroes_bad_frames() -> None:
    lim = SafetyLimiter(samplerate=48000, ceiling_db=-1.0)
    loud = np.full((256, 2), 40.0, np.float32)
    assert np.abs(lim.process(loud)).max() <= 10 ** (-1 / 20) + 1e-6
    bad = np.ones((256, 1), np.float32)
    bad[10] = np.nan
    assert not lim.process(bad).any() and lim.bad_frames == 1


def test_exploding_model_output_is_limited_end_to_end(tmp_path: Path) -> None:
    import torch

    class Loud(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.sr = 48000
            self.register_buffer("decode_params", torch.tensor([2, 32, 1, 1]))

        @torch.jit.export
        def decode(self, z: torch.Tensor) -> torch.Tensor:
            t = torch.arange(z.shape[-1] * 32).float()
            y = torch.sin(t * 0.3) * (1.0 + 1000.0 * z[:, 0].repeat_interleave(32, dim=-1))
            return y[:, None, :]

    rt = ModelRuntime(save(Loud(), tmp_path / "loud.ts"))
    out = render(rt, _patch(rt), [Event(0.1, "/sillage/latent/0", (5.0,))], seconds=0.3, seed=0)
    assert np.abs(out).max() <= 10 ** (-1 / 20) + 1e-6


def test_score_errors_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": 0, "address": "/sillage/panic"}\n{"t": -1, "address": "/x"}\n')
    with pytest.raises(ScoreError, match=r"bad.jsonl:2: \"t\" must be a time"):
        read_score(bad)
    bad.write_text("not json\n")
    with pytest.raises(ScoreError, match=r":1: not JSON"):
        read_score(bad)

"""The instrument listens (offline): streaming encode of an input file, latent transforms,
descriptors as mapping sources, decoder-only models and bad input."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from instrument.engine.listen import FileInput, Listener
from instrument.engine.offline import render
from instrument.engine.output_safety import DCBlocker, SafetyLimiter
from instrument.engine.runtime import ModelRuntime
from instrument.link.events import Event
from instrument.metrics import Reporter
from instrument.patch import PatchContext, PatchError, load_patch
from mappings.descriptors import Descriptors
from mappings.listen import LatentTransform, parse_listen
from tests.conftest import ROOT
from tests.modelfixtures import OscModel, save

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SR = 48000
DEFAULT_MODEL = ROOT / "models" / "default" / "sillage-default.ts"


class DecodeOnly(OscModel):
    """The oscillator without encode: a decoder-only export."""

    @torch.jit.export
    def get_methods(self) -> list[str]:
        return ["decode"]


def _tone(path: Path, *, sr: int = SR, seconds: float = 1.0, f0: float = 220.0) -> np.ndarray:
    """A tone whose level rises, then a second tone: the encoded latent moves."""
    t = np.arange(int(sr * seconds)) / sr
    env = np.linspace(0.05, 1.0, t.size)
    f = np.where(t < seconds / 2, f0, 2 * f0)
    x = (0.3 * env * np.sin(2 * np.pi * np.cumsum(f) / sr)).astype(np.float32)
    sf.write(path, x, sr, subtype="FLOAT")
    return x


def _patch(tmp_path: Path, text: str, latent_size: int = 4, name: str = "p"):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return load_patch(path, context=PatchContext(latent_size, SR))


@pytest.fixture()
def runtime(mono_model: Path) -> ModelRuntime:
    return ModelRuntime(mono_model)


@pytest.fixture()
def tone(tmp_path: Path) -> Path:
    path = tmp_path / "in.wav"
    _tone(path)
    return path


# --- streaming encode equals whole-file encode ---------------------------------------------
@pytest.mark.parametrize("model", ["osc", "default"])
def test_streaming_encode_of_a_file_equals_whole_file_encode(
    model: str, mono_model: Path, tone: Path
) -> None:
    path = mono_model if model == "osc" else DEFAULT_MODEL
    if not path.is_file():
        pytest.skip("default model missing")
    rt = ModelRuntime(path)
    x, _ = sf.read(tone, dtype="float32")
    listener = Listener(rt.fresh_encoder(), FileInput(tone, samplerate=SR))
    r = rt.info.ratio
    with torch.no_grad():
        got = np.array([listener.step(r).copy() for _ in range(x.size // r)]).T
    whole = rt.fresh_encoder().encode(x[None])  # the same start: warmed up on silence
    assert got.shape == whole.shape
    np.testing.assert_allclose(got, whole, atol=1e-4 * max(1.0, float(np.abs(whole).max())))


def test_render_with_input_equals_whole_file_encode_then_decode(
    runtime: ModelRuntime, tone: Path, tmp_path: Path
) -> None:
    """mix 1, no smoothing: the render is decode(encode(file)) through the output chain."""
    patch = _patch(tmp_path, "[engine]\nsmoothing_ms = 0\n[listen]\nmix = 1.0\n")
    out = render(runtime, patch, [], seconds=1.0, input_file=tone)
    x, _ = sf.read(tone, dtype="float32")
    rt = runtime.fresh()
    z = np.clip(rt.fresh_encoder().encode(x[None]), -8, 8)
    ref = rt.decode(z).T
    ref = SafetyLimiter(samplerate=SR).process(DCBlocker(samplerate=SR, channels=1).process(ref))
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, atol=1e-4)
    assert float(np.abs(out[-4800:]).max()) > 3 * float(np.abs(out[:4800]).max())


def test_input_at_another_rate_is_resampled(runtime: ModelRuntime, tmp_path: Path) -> None:
    path = tmp_path / "in44.wav"
    _tone(path, sr=44100)
    src = FileInput(path, samplerate=SR)
    assert src.file_samplerate == 44100 and src.audio.shape[0] == SR
    patch = _patch(tmp_path, "[listen]\nmix = 1.0\n")
    out = render(runtime, patch, [], seconds=1.0, input_file=path)
    assert out.shape == (SR, 1) and np.isfinite(out).all()


@pytest.mark.parametrize("blocksize", [64, 65, 2049])
def test_listening_render_is_bit_identical_whatever_the_blocksize(
    runtime: ModelRuntime, tone: Path, tmp_path: Path, blocksize: int
) -> None:
    patch = _patch(tmp_path, "[listen]\nmix = 0.8\nnoise = 0.3\n")
    ref = render(runtime, patch, [], seconds=0.5, seed=4, input_file=tone, blocksize=256)
    patch = _patch(tmp_path, "[listen]\nmix = 0.8\nnoise = 0.3\n")
    out = render(runtime, patch, [], seconds=0.5, seed=4, input_file=tone, blocksize=blocksize)
    assert out.tobytes() == ref.tobytes()


def test_cli_input_file_twice_gives_identical_files(
    mono_model: Path, tone: Path, tmp_path: Path
) -> None:
    (tmp_path / "listen.toml").write_text("[listen]\nmix = 1.0\nnoise = 0.2\n")
    outs = []
    for i, block in enumerate((65, 2049)):
        out = tmp_path / f"out{i}.wav"
        res = subprocess.run(
            [sys.executable, "run_instrument.py", "--offline", str(out), "--input-file", str(tone),
             "--model", str(mono_model), "--patch", str(tmp_path / "listen.toml"),
             "--blocksize", str(block), "--seed", "7"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    audio, sr = sf.read(tmp_path / "out0.wav")
    assert sr == SR and audio.shape[0] == SR  # --seconds defaults to the input's length


# --- transforms ----------------------------------------------------------------------------
def _latents(runtime: ModelRuntime, patch, tone: Path, events=(), seconds: float = 1.0):
    """Render and return the latent decoded at each frame."""
    from instrument.engine.listen import make_encoder
    from instrument.engine.loop import DecodeLoop
    from instrument.link.events import ScoreSource

    rt = runtime.fresh()
    listener = Listener(make_encoder(rt), FileInput(tone, samplerate=SR), seed=1)
    loop = DecodeLoop(rt, patch, ScoreSource(list(events)), listener=listener)
    zs = []
    with torch.no_grad():
        for _ in range(int(seconds / rt.info.frame_s)):
            loop.step()
            zs.append(loop.played_latent().copy())
    return np.array(zs), loop


def test_mix_zero_ignores_the_input(runtime: ModelRuntime, tone: Path, tmp_path: Path) -> None:
    score = [Event(0.1, "/sillage/latent", (1.0, 0.5, 0.0, 0.0))]
    plain = render(runtime, _patch(tmp_path, ""), score, seconds=0.5)
    deaf = render(
        runtime, _patch(tmp_path, "[listen]\nmix = 0.0\nbias = 2.0\n"), score, seconds=0.5,
        input_file=tone,
    )  # fmt: skip
    assert deaf.tobytes() == plain.tobytes()


def test_freeze_holds_bias_shifts_scale_multiplies(
    runtime: ModelRuntime, tone: Path, tmp_path: Path
) -> None:
    listen = "[engine]\nsmoothing_ms = 0\n[listen]\nmix = 1.0\n"
    free, _ = _latents(runtime, _patch(tmp_path, listen), tone)
    assert np.ptp(free[:, 1]) > 1.0  # the input's level moves dimension 1
    frozen, _ = _latents(
        runtime, _patch(tmp_path, listen), tone, [Event(0.5, "/sillage/listen/freeze", (1,))]
    )
    k = round(0.5 / runtime.info.frame_s)  # the first frame at or after 0.5 s holds ...
    assert np.array_equal(frozen[:k], free[:k])
    assert np.all(frozen[k:, 1] == free[k - 1, 1])  # ... the value heard before it
    shifted, _ = _latents(runtime, _patch(tmp_path, listen + "bias = [0, 0.5]\n"), tone)
    np.testing.assert_allclose(shifted[:, 1], np.clip(free[:, 1] + 0.5, -8, 8))
    np.testing.assert_allclose(shifted[:, 0], free[:, 0])
    scaled, _ = _latents(
        runtime, _patch(tmp_path, listen), tone, [Event(0.0, "/sillage/listen/scale/1", (0.5,))]
    )
    np.testing.assert_allclose(scaled[1:, 1], 0.5 * free[1:, 1])


def test_mix_glides_between_controllers_and_input(
    runtime: ModelRuntime, tone: Path, tmp_path: Path
) -> None:
    patch = _patch(tmp_path, "[engine]\nsmoothing_ms = 0\n[listen]\nmix = 0.0\n")
    score = [Event(0.0, "/sillage/latent", (0.0, 3.0)), Event(0.5, "/sillage/listen/mix", (1.0,))]
    zs, _ = _latents(runtime, patch, tone, score)
    k = int(0.5 / runtime.info.frame_s)
    assert np.all(zs[1:k, 1] == 3.0)  # controllers only
    assert abs(zs[k + 2, 1] - 3.0) > 1e-3  # gliding towards the input's latent ...
    free, _ = _latents(
        runtime, _patch(tmp_path, "[engine]\nsmoothing_ms = 0\n[listen]\nmix = 1.0\n"), tone
    )
    np.testing.assert_allclose(zs[-1, 1], free[-1, 1], atol=1e-3)  # ... and it arrives


def test_noise_is_seeded_and_per_dimension(
    runtime: ModelRuntime, tone: Path, tmp_path: Path
) -> None:
    listen = "[engine]\nsmoothing_ms = 0\n[listen]\nmix = 1.0\nnoise = [0, 0, 0.5]\n"
    a, _ = _latents(runtime, _patch(tmp_path, listen), tone, seconds=0.3)
    b, _ = _latents(runtime, _patch(tmp_path, listen), tone, seconds=0.3)
    assert np.array_equal(a, b)
    assert np.std(a[:, 2]) > 0.3 and np.all(a[:, 0] == 0.0)


def test_transpose_moves_the_pitch_dimension_by_the_card(tmp_path: Path, tone: Path) -> None:
    path = save(OscModel(latent_size=4, ratio=64), tmp_path / "pitched.ts")
    path.with_suffix(".toml").write_text("[latent]\npitch_dim = 3\npitch_scale = 2.0\n")
    rt = ModelRuntime(path)
    listen = "[engine]\nsmoothing_ms = 0\n[listen]\nmix = 1.0\n"
    up, _ = _latents(rt, _patch(tmp_path, listen + "transpose_st = 7\n"), tone, seconds=0.2)
    np.testing.assert_allclose(up[:, 3], 2.0 * 7 / 12)  # pitch_scale units per octave
    # a model without a pitch dimension refuses, with the reason
    reporter = Reporter()
    render(
        ModelRuntime(save(OscModel(), tmp_path / "plain.ts")),
        _patch(tmp_path, ""), [Event(0.0, "/sillage/listen/transpose", (3.0,))],
        seconds=0.1, input_file=tone, reporter=reporter,
    )  # fmt: skip
    assert reporter.counts.get("listen") == 1


def test_listen_messages_without_input_say_how_to_listen(
    runtime: ModelRuntime, tmp_path: Path
) -> None:
    reporter = Reporter()
    render(
        runtime, _patch(tmp_path, ""), [Event(0.0, "/sillage/listen/mix", (1.0,))],
        seconds=0.1, reporter=reporter,
    )  # fmt: skip
    assert reporter.counts == {"listen": 1}


def test_decoder_only_model_says_it_cannot_listen_and_plays(tmp_path: Path, tone: Path) -> None:
    rt = ModelRuntime(save(DecodeOnly(), tmp_path / "deaf.ts"))
    assert not rt.info.has_encode
    reporter = Reporter()
    score = [Event(0.0, "/sillage/latent", (0.0, 1.0))]
    patch = _patch(tmp_path, "[listen]\nmix = 1.0\n")
    heard = render(rt, patch, score, seconds=0.3, input_file=tone, reporter=reporter)
    plain = render(rt, _patch(tmp_path, ""), score, seconds=0.3)
    assert heard.tobytes() == plain.tobytes() and np.abs(heard).max() > 0.01
    assert reporter.counts.get("listen") == 1


def test_bad_input_never_blows_up_the_latent(runtime: ModelRuntime, tmp_path: Path) -> None:
    n = SR // 2
    x = np.zeros(2 * n, dtype=np.float32)
    x[: n // 2] = 40.0  # clipping far beyond full scale, DC
    x[n // 2 : n] = np.nan  # a broken driver
    x[n:] = 0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / SR)  # then a real sound
    path = tmp_path / "bad.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    zs, loop = _latents(runtime, _patch(tmp_path, "[listen]\nmix = 1.0\n"), path)
    assert np.isfinite(zs).all() and np.abs(zs).max() <= 8.0
    assert loop.listener is not None and loop.listener.bad_input > 0
    assert abs(zs[-1, 1] - math.log(0.3 / math.sqrt(2))) < 0.2  # the encoder recovered


def test_patch_listen_table_is_checked(tmp_path: Path) -> None:
    with pytest.raises(PatchError, match=r"\[listen\] mix"):
        _patch(tmp_path, "[listen]\nmix = 2.0\n")
    with pytest.raises(PatchError, match=r"unknown key"):
        _patch(tmp_path, "[listen]\nvolume = 1\n")
    with pytest.raises(PatchError, match=r"5 values"):
        _patch(tmp_path, "[listen]\nbias = [0, 0, 0, 0, 0]\n")


def test_transform_alone() -> None:
    t = LatentTransform(3, frame_s=0.005, pitch_dim=0, pitch_scale=1.0)
    t.configure(parse_listen({"mix": [1, 0.5], "scale": 2.0, "transpose_st": 12}, 3))
    t.jump_mix()
    z = t(np.array([0.0, 1.0, 1.0]), np.array([0.0, 0.0, 5.0]))
    np.testing.assert_allclose(z, [1.0, 1.0, 5.0])
    z = t(np.array([np.nan, 1.0, 1.0]), np.zeros(3))  # held, counted
    assert np.isfinite(z).all() and t.rejected == 1


# --- descriptors ---------------------------------------------------------------------------
@pytest.mark.parametrize("f0", [82.4, 220.0, 440.0, 987.8])
def test_descriptor_pitch_of_a_tone(f0: float) -> None:
    d = Descriptors(samplerate=SR)
    t = np.arange(SR // 2) / SR
    x = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(2 * np.pi * 2 * f0 * t)
    for k in range(0, x.size - 256, 256):
        v = d.update(x[k : k + 256])
    assert abs(1200 * math.log2(v["pitch"] / f0)) < 5 and v["voiced"] == 1.0
    assert abs(v["loudness"] - 20 * math.log10(math.sqrt(0.3**2 / 2 + 0.1**2 / 2))) < 0.5
    assert f0 < v["centroid"] < 2 * f0


def test_descriptor_onset_fires_once_when_a_sound_starts() -> None:
    d = Descriptors(samplerate=SR)
    x = np.zeros(SR)
    t = np.arange(SR // 2) / SR
    x[SR // 2 :] = 0.4 * np.sin(2 * np.pi * 330 * t) * np.exp(-t * 3)
    onsets = [k for k in range(0, SR - 256, 256) if d.update(x[k : k + 256])["onset"]]
    assert len(onsets) == 1 and abs(onsets[0] - SR // 2) <= 512
    silent = Descriptors(samplerate=SR)
    for _ in range(0, SR, 256):
        v = silent.update(np.zeros(256))
    assert v["loudness"] == -120.0 and v["voiced"] == 0.0 and v["centroid"] == 0.0


def test_descriptors_drive_a_mapping_like_a_sensor(
    runtime: ModelRuntime, tone: Path, tmp_path: Path
) -> None:
    patch = _patch(
        tmp_path,
        """
[engine]
smoothing_ms = 0
[[input]]
kind = "audio"
name = "mic"
[mapping]
kind = "matrix"
inputs = ["mic.loudness", "mic.pitch"]
matrix = [[1, 0], [0, 1]]
[conditioning."mic.loudness"]
range = [-60, 0]
[conditioning."mic.pitch"]
range = [0, 1000]
""",
    )
    zs, _ = _latents(runtime, patch, tone)
    k = int(0.45 / runtime.info.frame_s)
    assert zs[k, 0] > zs[10, 0] + 0.1  # louder input, larger dimension 0
    assert 0.18 < zs[k, 1] < 0.26 and 0.4 < zs[-1, 1] < 0.48  # 220 Hz then 440 Hz of 1000


def test_shipped_listen_patch_plays_a_file(mono_model: Path, tone: Path, tmp_path: Path) -> None:
    out = tmp_path / "listen.wav"
    res = subprocess.run(
        [sys.executable, "run_instrument.py", "--offline", str(out), "--input-file", str(tone),
         "--model", str(mono_model), "--patch", "listen", "--seconds", "0.5"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    audio, _ = sf.read(out)
    assert np.abs(audio).max() > 0.001


def test_missing_input_file_names_the_fix(mono_model: Path, tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "run_instrument.py", "--offline", str(tmp_path / "o.wav"),
         "--input-file", str(tmp_path / "nope.wav"), "--model", str(mono_model)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 1 and "nope.wav" in res.stderr and "Traceback" not in res.stderr


def test_default_model_output_pitch_follows_the_input(tmp_path: Path) -> None:
    """220 Hz then 440 Hz in; the default model's output pitch follows within 25 cents (once
    the default model declares a pitch dimension: the DDSP family)."""
    rt = ModelRuntime(DEFAULT_MODEL)
    if rt.info.latent.pitch_dim is None:
        pytest.skip("the default model's card declares no pitch dimension yet")
    sr = rt.info.samplerate
    t = np.arange(sr) / sr
    x = np.concatenate([0.3 * np.sin(2 * np.pi * f0 * t) for f0 in (220.0, 440.0)])
    path = tmp_path / "tones.wav"
    sf.write(path, x.astype(np.float32), sr, subtype="FLOAT")
    out = render(rt, load_patch("listen", context=PatchContext(rt.info.latent_size, sr)), [],
                 seconds=2.0, input_file=path)[:, 0]  # fmt: skip
    for k, f0 in enumerate((220.0, 440.0)):
        d = Descriptors(samplerate=sr)
        seg = out[k * sr + sr // 2 : (k + 1) * sr]
        cents = []
        for j in range(0, seg.size - 256, 256):
            v = d.update(seg[j : j + 256])
            if v["voiced"] and j > 4096:
                cents.append(1200 * math.log2(v["pitch"] / f0))
        assert cents, f"no pitch heard at {f0} Hz"
        assert abs(float(np.median(cents))) < 25, (f0, np.median(cents))

"""Decode backends: the ONNX twin decodes what the TorchScript model does, or is refused.

Contracts, not timings: equality within the stated tolerance across streaming calls (both
model families), refusal of a twin that differs (with TorchScript playing on), a clear message
for ``--backend onnx`` without a twin, independent ``fresh()`` copies, and offline renders that
stay bit-identical across block sizes on each backend.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from instrument.engine.backends import TWIN_ATOL, OnnxBackend, TorchBackend
from instrument.engine.offline import render
from instrument.engine.runtime import ModelError, ModelRuntime
from instrument.link.events import Event
from instrument.patch import PatchContext, load_patch
from models.nn import noise_free_decode

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

GESTURE = [
    Event(0.02, "/sillage/latent/0", (1.5,)),
    Event(0.1, "/sillage/latent", (-1.0, 0.5, 2.0)),
    Event(0.2, "/sillage/smoothing_ms", (3.0,)),
    Event(0.25, "/sillage/latent/2", (-2.0,)),
]


def _tiny(path: Path, family: str, seed: int = 0) -> Path:
    import torch

    from models.config import make_config
    from models.export import save_scripted, script_model
    from models.families import build_model

    torch.manual_seed(seed)
    cfg = make_config("tiny" if family == "vae" else "ddsp-tiny")
    save_scripted(script_model(build_model(cfg), cfg, streaming=True), path)  # type: ignore[arg-type]
    return path


@pytest.fixture(scope="session", params=["vae", "ddsp"])
def twin_model(request: pytest.FixtureRequest, model_dir: Path) -> Path:
    """A tiny Sillage export of each family with its ONNX twin beside it."""
    from models.onnx_export import write_twin

    path = _tiny(model_dir / f"twin-{request.param}.ts", request.param)
    write_twin(path)
    return path


@pytest.fixture()
def copy_of(tmp_path: Path):
    def copy(model: Path) -> Path:
        out = tmp_path / model.name
        shutil.copy(model, out)
        return out

    return copy


def _patch(rt: ModelRuntime):
    return load_patch("default", context=PatchContext(rt.info.latent_size, rt.info.samplerate))


def test_auto_picks_the_twin_and_it_streams_like_torchscript(
    twin_model: Path, one_torch_thread: None
) -> None:
    import torch

    rt = ModelRuntime(twin_model, backend="auto")
    assert rt.backend_name == "onnx" and "checked" in rt.backend_note
    assert rt.twin_diff <= TWIN_ATOL
    # a fresh state on both sides, 60 streaming calls of a moving latent, noise off
    onnx = rt.backend.fresh()
    assert isinstance(onnx, OnnxBackend)
    onnx.noise_off = True
    torch_ref = ModelRuntime(twin_model, backend="torch")
    ref = noise_free_decode(torch_ref.backend.fresh().module)  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    z = np.cumsum(rng.normal(scale=0.3, size=(rt.info.latent_size, 60)), axis=1)
    z = z.astype(np.float32)
    worst = 0.0
    with torch.inference_mode():
        for i in range(z.shape[1]):
            a = ref(torch.from_numpy(z[:, i : i + 1])[None], False)[0].numpy()
            b = onnx.decode_frame(z[:, i])
            assert b.shape == (rt.info.channels, rt.info.ratio)
            worst = max(worst, float(np.abs(a - b).max()))
    assert worst <= TWIN_ATOL


def test_torch_backend_when_asked(twin_model: Path) -> None:
    rt = ModelRuntime(twin_model, backend="torch")
    assert rt.backend_name == "torch" and isinstance(rt.backend, TorchBackend)
    assert "--backend torch" in rt.backend_note


def test_a_twin_that_differs_is_refused_and_torchscript_plays(
    twin_model: Path, tmp_path: Path
) -> None:
    from models.onnx_export import write_twin

    family = "ddsp" if "ddsp" in twin_model.name else "vae"
    model = tmp_path / twin_model.name
    shutil.copy(twin_model, model)
    other = _tiny(tmp_path / "other.ts", family, seed=1)  # same architecture, other weights
    write_twin(other, model.with_suffix(".onnx"))
    rt = ModelRuntime(model)
    assert rt.backend_name == "torch"
    assert "refused" in rt.backend_note and "differs from the TorchScript model" in rt.backend_note
    assert f"tolerance {TWIN_ATOL:g}" in rt.backend_note
    assert rt.decode(np.zeros((rt.info.latent_size, 2), np.float32)).shape[1] == 2 * rt.info.ratio
    with pytest.raises(ModelError, match=r"--backend onnx: ONNX twin .* refused: it differs"):
        ModelRuntime(model, backend="onnx")


def test_a_corrupt_twin_is_refused(twin_model: Path, copy_of) -> None:
    model = copy_of(twin_model)
    model.with_suffix(".onnx").write_bytes(b"not an onnx file at all")
    rt = ModelRuntime(model)
    assert rt.backend_name == "torch" and "not a readable ONNX file" in rt.backend_note


def test_backend_onnx_without_a_twin_says_so(mono_model: Path) -> None:
    with pytest.raises(ModelError, match=r"--backend onnx: no ONNX twin osc-mono\.onnx"):
        ModelRuntime(mono_model, backend="onnx")
    rt = ModelRuntime(mono_model)  # auto: TorchScript, and the note says why
    assert rt.backend_name == "torch" and "no ONNX twin" in rt.backend_note


def test_cli_backend_onnx_without_a_twin_exits_with_the_fix(
    mono_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from instrument.cli import main

    out = tmp_path / "x.wav"
    argv = ["--model", str(mono_model), "--offline", str(out), "--seconds", "0.1"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--backend", "onnx"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "no ONNX twin" in err and "python -m models.onnx_export" in err


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_fresh_copies_have_their_own_state_and_can_encode(twin_model: Path, backend: str) -> None:
    rt = ModelRuntime(twin_model, backend=backend)
    z = np.full((rt.info.latent_size, 3), 0.7, np.float32)
    a, b = rt.fresh(), rt.fresh()
    assert a.backend_name == b.backend_name == backend
    a.decode(z)  # a moves on; b starts where a started
    b_first = b.decode(z)
    assert b_first.shape == (rt.info.channels, 3 * rt.info.ratio)
    assert not np.array_equal(a.decode(z), b_first)
    x = np.zeros((rt.info.channels, 8 * rt.info.ratio), np.float32)
    assert a.encode(x).shape[0] == rt.info.latent_size


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_offline_render_bit_identical_across_blocksizes(twin_model: Path, backend: str) -> None:
    rt = ModelRuntime(twin_model, backend=backend)
    assert rt.backend_name == backend
    ref = render(rt, _patch(rt), GESTURE, seconds=0.3, blocksize=256, seed=5)
    assert np.abs(ref).max() > 0
    for blocksize in (64, 65, 2049):
        out = render(rt, _patch(rt), GESTURE, seconds=0.3, blocksize=blocksize, seed=5)
        assert out.tobytes() == ref.tobytes(), blocksize
    other_seed = render(rt, _patch(rt), GESTURE, seconds=0.3, blocksize=256, seed=6)
    assert not np.array_equal(other_seed, ref)  # the noise follows the seed on both backends


def test_model_swap_keeps_the_backend_choice(twin_model: Path) -> None:
    from instrument.engine.loading import load_start, load_swap

    start = load_start(twin_model, "default", backend="torch")
    assert start.runtime is not None and start.patch is not None
    swap = load_swap("model", str(twin_model), runtime=start.runtime, patch=start.patch)
    assert swap.runtime is not None and swap.runtime.backend_name == "torch"


def test_threads_auto_stays_on_one_thread_for_a_light_model(twin_model: Path) -> None:
    rt = ModelRuntime(twin_model, threads=0)
    assert rt.threads == 1 and rt.threads_note.startswith("1 thread (")


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_polyphonic_voices_play_on_either_backend_and_stay_block_size_invariant(
    twin_model: Path, tmp_path: Path, backend: str
) -> None:
    import re

    from instrument.engine.loading import load_patch_for
    from tests.conftest import ROOT

    text = (ROOT / "patches" / "keyboard.toml").read_text()
    poly = tmp_path / "keyboard-3.toml"
    poly.write_text(re.sub(r"(?m)^voices = \d+", "voices = 3", text, count=1))
    rt = ModelRuntime(twin_model, backend=backend)
    chord = [Event(0.0, "/midi/note", (1, n, 100)) for n in (60, 64, 67)]
    ref = render(rt, load_patch_for(poly, rt), chord, seconds=0.2, blocksize=256, seed=2)
    other = render(rt, load_patch_for(poly, rt), chord, seconds=0.2, blocksize=97, seed=2)
    assert np.all(np.isfinite(ref)) and np.abs(ref).max() > 0
    assert other.tobytes() == ref.tobytes()


@pytest.mark.parametrize(
    ("share_1", "share_2", "threads"),
    [(0.3, 0.2, 1), (0.9, 0.5, 2), (0.9, 0.85, 1)],  # light; heavy and 2 help; heavy, 2 don't
)
def test_threads_auto_takes_two_only_for_a_heavy_model_and_only_if_faster(
    twin_model: Path, monkeypatch: pytest.MonkeyPatch, share_1: float, share_2: float, threads: int
) -> None:
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    rt = ModelRuntime(twin_model, backend="onnx")
    timings = iter([share_1 * rt.info.frame_s, share_2 * rt.info.frame_s])
    monkeypatch.setattr(rt, "time_frame_s", lambda n_calls=8: next(timings))
    rt.auto_threads()
    assert rt.threads == threads, rt.threads_note
    y = rt.decode_frame(np.zeros(rt.info.latent_size, np.float32))
    assert y.shape == (rt.info.channels, rt.info.ratio)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_a_released_runtime_still_makes_fresh_copies(twin_model: Path, backend: str) -> None:
    rt = ModelRuntime(twin_model, backend=backend)
    rt.release()  # the loop keeps the previous model this way, to fall back to
    back = rt.fresh()
    assert back.backend_name == backend
    y = back.decode_frame(np.zeros(rt.info.latent_size, np.float32))
    assert y.shape == (rt.info.channels, rt.info.ratio) and np.all(np.isfinite(y))


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_listening_encodes_on_a_copy_of_either_backend(
    twin_model: Path, tmp_path: Path, backend: str
) -> None:
    """The encoder copy runs TorchScript's encode; its decode side plays on the backend."""
    import soundfile as sf

    rt = ModelRuntime(twin_model, backend=backend)
    if not rt.info.has_encode:
        pytest.skip("decoder-only")
    t = np.arange(int(0.3 * rt.info.samplerate)) / rt.info.samplerate
    tone = tmp_path / "tone.wav"
    sf.write(tone, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rt.info.samplerate)
    ref = render(rt, _patch(rt), [], seconds=0.3, seed=1, input_file=tone, blocksize=256)
    out = render(rt, _patch(rt), [], seconds=0.3, seed=1, input_file=tone, blocksize=129)
    assert np.all(np.isfinite(ref)) and out.tobytes() == ref.tobytes()

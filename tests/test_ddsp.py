"""DDSP model family: the synthesiser keeps its pitch and phase, streaming equals whole decode,
the exported TorchScript plays the pitch its latent asks for, the runtime loads it."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from models.config import make_config
from models.ddsp import DDSP, HarmonicNoiseSynth, set_ddsp_streaming
from models.export import load_scripted, model_card, save_scripted, script_model, to_toml
from models.families import set_model_streaming
from models.playability import card_latent, estimate_f0, in_tune

pytestmark = [
    pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning"),
    pytest.mark.usefixtures("one_torch_thread"),
]

SR = 48000
DEFAULT = Path(__file__).resolve().parents[1] / "models" / "default" / "sillage-default.ts"


def _cents(a: float, b: float) -> float:
    return 1200 * math.log2(a / b)


@pytest.fixture(scope="module")
def tiny() -> DDSP:
    torch.manual_seed(0)
    return DDSP(make_config("ddsp-tiny")).eval()


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny DDSP exported like the default (streaming TorchScript + card)."""
    torch.manual_seed(0)
    cfg = make_config("ddsp-tiny")
    model = DDSP(cfg)
    path = tmp_path_factory.mktemp("ddsp") / "tiny-ddsp.ts"
    save_scripted(script_model(model, cfg, streaming=True), path)
    state = {"step": 0, "data_summary": {"note": "untrained test model"}, "command": ""}
    card = model_card(cfg, state, streaming=True, command="tests", model=model)
    path.with_suffix(".toml").write_text(to_toml(card))
    return path


def _held(latent: int, frames: int, pitch_hz: float, others: float = 0.0) -> torch.Tensor:
    z = torch.full((1, latent, frames), others)
    z[:, 0] = math.log2(pitch_hz / 440.0)
    z[:, 1] = 0.0
    return z


# -- the synthesiser alone --------------------------------------------------------------------
@pytest.mark.parametrize("f0", [55.0, 261.63, 440.0, 1975.5])
def test_synth_alone_produces_the_requested_f0(f0: float) -> None:
    synth = HarmonicNoiseSynth(SR, 256, 32, 65)
    frames = 60
    amps = torch.zeros(1, 32, frames)
    amps[:, :8] = torch.tensor([0.5, 0.3, 0.2, 0.1, 0.1, 0.05, 0.05, 0.02]).view(1, 8, 1)
    y = synth(torch.full((1, frames), f0), amps, torch.zeros(1, 65, frames), False)[0, 0]
    est, aper = estimate_f0(y[len(y) // 3 :].numpy(), SR)
    assert abs(_cents(est, f0)) < 0.5 and aper < 0.05, (est, aper)


def test_synth_masks_harmonics_above_nyquist() -> None:
    synth = HarmonicNoiseSynth(SR, 256, 32, 65)
    f0, frames = 5000.0, 64
    amps = torch.full((1, 32, frames), 0.05)
    y = synth(torch.full((1, frames), f0), amps, torch.zeros(1, 65, frames), False)[0, 0].numpy()
    spec = np.abs(np.fft.rfft(y[4096 : 4096 + 9600] * np.hanning(9600)))  # 5 Hz bins
    freqs = np.fft.rfftfreq(9600, 1 / SR)
    harmonic = np.zeros_like(spec, dtype=bool)
    for k in range(1, 5):  # 5, 10, 15, 20 kHz: the only partials below Nyquist
        harmonic |= np.abs(freqs - k * f0) < 60
    assert spec[~harmonic].max() < 1e-3 * spec[harmonic].max()  # no aliased partials


def test_phase_runs_on_across_calls_without_a_step() -> None:
    """One harmonic at a held f0, decoded one frame per call, is one continuous sine."""
    synth = HarmonicNoiseSynth(SR, 256, 4, 65)
    synth.mode = 1
    f0, frames = 440.0, 50
    amps = torch.zeros(1, 4, 1)
    amps[:, 0] = 0.5
    out = [
        synth(torch.full((1, 1), f0), amps, torch.zeros(1, 65, 1), False)[0, 0]
        for _ in range(frames)
    ]
    y = torch.cat(out).double().numpy()
    n = np.arange(1, len(y) + 1)
    ideal = 0.5 * np.sin(2 * np.pi * f0 * n / SR)
    np.testing.assert_allclose(y, ideal, atol=2e-5)


def test_a_glide_has_no_step_at_frame_boundaries() -> None:
    """f0 and amplitude change every frame: the waveform's slope at boundaries is no larger
    than inside frames (controls ramp from the previous frame's value)."""
    synth = HarmonicNoiseSynth(SR, 256, 8, 65)
    synth.mode = 1
    frames = 80
    f0s = 200 * 2 ** (np.arange(frames) / 40)  # two octaves… in 80 frames: a fast glide
    pieces = []
    for t in range(frames):
        amps = torch.zeros(1, 8, 1)
        amps[:, 0] = 0.3 + 0.2 * math.sin(t / 5)
        amps[:, 1] = 0.1
        pieces.append(
            synth(torch.tensor([[f0s[t]]]), amps, torch.zeros(1, 65, 1), False)[0, 0].numpy()
        )
    y = np.concatenate(pieces).astype(np.float64)
    d2 = np.abs(np.diff(y, 2))  # a step or a kink shows up as a spike in the 2nd difference
    at_boundary = d2[np.arange(1, frames - 1) * 256 - 1]
    assert at_boundary.max() <= 1.05 * np.percentile(d2, 99.9)


def test_noise_filter_state_continues_across_calls() -> None:
    """Filtered noise decoded frame by frame equals decoding all frames at once (same random
    stream): the overlap-add tail lives in the state."""
    synth = HarmonicNoiseSynth(SR, 256, 4, 65)
    frames = 12
    f0 = torch.full((1, frames), 300.0)
    amps = torch.zeros(1, 4, frames)
    mags = torch.rand(1, 65, frames)
    torch.manual_seed(3)
    whole = synth(f0, amps, mags, True)
    synth.mode = 1
    torch.manual_seed(3)
    parts = [
        synth(f0[:, t : t + 1], amps[..., t : t + 1], mags[..., t : t + 1], True)
        for t in range(frames)
    ]
    torch.testing.assert_close(torch.cat(parts, -1), whole, atol=1e-6, rtol=1e-5)


# -- the model ----------------------------------------------------------------------------------
def test_streaming_equals_whole_decode_and_encode(tiny: DDSP) -> None:
    ratio, latent = tiny.ratio, tiny.latent_size
    z = torch.randn(1, latent, 24) * 0.7
    x = torch.randn(1, 1, 24 * ratio) * 0.1
    with torch.no_grad():
        torch.manual_seed(5)
        whole = tiny.decode(z)
        enc = tiny.encode(x)
        set_model_streaming(tiny, True)
        torch.manual_seed(5)
        chunks = [tiny.decode(z[..., a:b]) for a, b in [(0, 1), (1, 6), (6, 7), (7, 24)]]
        set_model_streaming(tiny, True)
        enc_chunks = [
            tiny.encode(x[..., a * ratio : b * ratio]) for a, b in [(0, 3), (3, 4), (4, 24)]
        ]
        set_model_streaming(tiny, False)
    assert whole.abs().max() > 1e-3
    torch.testing.assert_close(torch.cat(chunks, -1), whole, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.cat(enc_chunks, -1), enc, atol=1e-4, rtol=1e-4)


def test_exported_streaming_equals_whole_and_holds_the_pitch(tiny_export: Path) -> None:
    z = _held(4, 60, 220.0, others=0.3)
    torch.manual_seed(1)
    whole = load_scripted(tiny_export).decode(z)
    m = load_scripted(tiny_export)
    torch.manual_seed(1)
    parts = torch.cat([m.decode(z[..., i : i + 1]) for i in range(60)], -1)
    torch.testing.assert_close(parts, whole, atol=1e-5, rtol=1e-4)
    # Held latent: steady at the requested pitch, not at the frame rate (750 Hz here).
    latent = card_latent(tiny_export)
    assert latent["pitch_dim"] == 0 and latent["pitch_scale"] == 1.0
    result = in_tune(load_scripted(tiny_export), latent, notes=(36, 57, 69, 81, 96))
    assert result["max_abs_cents"] < 5, result


def test_card_declares_the_latent(tiny_export: Path) -> None:
    card = tomllib.loads(tiny_export.with_suffix(".toml").read_text())
    lat = card["latent"]
    assert (lat["pitch_dim"], lat["pitch_scale"], lat["pitch_ref_hz"]) == (0, 1.0, 440.0)
    assert lat["loudness_dim"] == 1
    assert isinstance(lat["loudness_ref_db"], float) and lat["loudness_db_per_unit"] > 0
    assert card["family"] == "ddsp" and card["delay_samples"] == 0


def test_runtime_loads_and_validates_the_export(tiny_export: Path) -> None:
    from instrument.engine.runtime import ModelRuntime

    rt = ModelRuntime(tiny_export)
    assert rt.info.latent_size == 4 and rt.info.ratio == 64 and rt.info.channels == 1
    assert rt.info.delay_samples == 0 and rt.info.card["latent"]["pitch_dim"] == 0
    z = np.zeros(4, np.float32)
    y = np.concatenate([rt.decode_frame(z).copy() for _ in range(40)], -1)
    assert y.shape == (1, 40 * 64) and np.isfinite(y).all() and np.abs(y).max() > 1e-3


def test_encode_reports_loudness_on_its_documented_scale(tiny: DDSP) -> None:
    t = np.arange(SR) / SR
    x = (0.1 * math.sqrt(2) * np.sin(2 * np.pi * 330 * t)).astype(np.float32)  # -20 dB RMS
    with torch.no_grad():
        z = tiny.encode(torch.from_numpy(x).view(1, 1, -1))[0]
    level = tiny.loudness_ref_db + tiny.loudness_db_per_unit * z[1, 20:]
    assert torch.allclose(level, torch.full_like(level, -20.0), atol=0.6)  # 256-sample RMS
    set_ddsp_streaming(tiny, False)


def test_shipped_default_encodes_steady_tones_to_their_pitch() -> None:
    latent = card_latent(DEFAULT)
    if not DEFAULT.is_file() or "pitch_dim" not in latent:
        pytest.skip("the shipped default has no pitch dimension")
    model = load_scripted(DEFAULT)
    t = np.arange(SR) / SR
    for f in (110.0, 123.47, 261.63, 523.25):  # B2: not a note of the corpus' scale
        x = 0.1 * (2 * ((f * t) % 1.0) - 1)  # sawtooth
        with torch.no_grad():
            z = model.encode(torch.from_numpy(x.astype(np.float32)).view(1, 1, -1))[0]
        pitch = z[latent["pitch_dim"], 40:] / latent["pitch_scale"]
        est = latent["pitch_ref_hz"] * 2 ** float(pitch.median())
        assert abs(_cents(est, f)) < 25, (f, est)
        assert float(pitch.std()) < 0.1


@pytest.mark.parametrize("path", [1, 2])
def test_noise_filter_paths_agree(path: int) -> None:
    """The convolution paths (TorchScript, ONNX) give the FFT path's output."""
    synth = HarmonicNoiseSynth(SR, 256, 4, 65)
    frames = 6
    f0 = torch.full((1, frames), 300.0)
    amps = torch.zeros(1, 4, frames)
    mags = torch.rand(1, 65, frames)
    torch.manual_seed(4)
    ref = synth(f0, amps, mags, True)
    synth.noise_path = path
    torch.manual_seed(4)
    torch.testing.assert_close(synth(f0, amps, mags, True), ref, atol=1e-6, rtol=1e-5)


def test_onnx_export_with_explicit_state_matches_torch(tiny: DDSP) -> None:
    pytest.importorskip("onnxruntime")
    from models.onnx_export import OnnxStreamingDecoder, export_onnx

    cfg = make_config("ddsp-tiny")
    torch.manual_seed(0)
    model = DDSP(cfg).eval()
    with torch.no_grad():  # silence the noise branch: ONNX draws other random numbers
        model.decoder.head.bias[model.n_harmonics + 1 :] = -60.0
    dec = OnnxStreamingDecoder(export_onnx(model, cfg))
    z = np.random.default_rng(0).standard_normal((1, 4, 12)).astype(np.float32) * 0.5
    y = np.concatenate([dec.decode(z[..., i : i + 1]) for i in range(12)], -1)
    with torch.no_grad():
        ref = model.decode(torch.from_numpy(z), False).numpy()
    np.testing.assert_allclose(y, ref, atol=2e-5)


def test_shipped_default_plays_the_pitch_its_latent_asks_for() -> None:
    latent = card_latent(DEFAULT)
    if not DEFAULT.is_file() or "pitch_dim" not in latent:
        pytest.skip("the shipped default has no pitch dimension")
    result = in_tune(load_scripted(DEFAULT), latent, notes=(36, 52, 69, 84, 96), seconds=0.4)
    assert result["max_abs_cents"] < 5, result


def test_evaluate_and_fine_tune_loading_take_a_ddsp_export(tiny_export: Path, tmp_path) -> None:
    import soundfile as sf

    from models.evaluate import evaluate
    from models.export import load_vae

    model, cfg, _ = load_vae(tiny_export)
    assert isinstance(model, DDSP) and cfg.family == "ddsp"
    folder = tmp_path / "holdout"
    folder.mkdir()
    t = np.arange(SR) / SR
    sf.write(folder / "a.wav", (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR)
    result = evaluate(tiny_export, folder, seconds=0.5)
    rec = result["reconstruction"]
    assert np.isfinite(rec["mss_model"]) and rec["segments"] >= 1

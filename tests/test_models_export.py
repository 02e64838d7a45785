"""Export contract (nn~ interface) and streaming equality for models/."""

import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from models.config import make_config
from models.export import load_scripted, save_scripted, script_model
from models.layers import set_streaming
from models.testing import make_tiny_model
from models.vae import VAE

pytestmark = [
    pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning"),
    pytest.mark.usefixtures("one_torch_thread"),
]


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_streaming_decode_equals_whole_decode(name: str) -> None:
    torch.manual_seed(0)
    cfg = make_config(name)
    model = VAE(cfg).eval()
    z = torch.randn(1, cfg.latent_size, 24)
    with torch.no_grad():
        whole = model.decode(z, add_noise=False)
        set_streaming(model, True)
        frames = [model.decode(z[..., i : i + 1], add_noise=False) for i in range(24)]
        chunks = []
        set_streaming(model, True)  # fresh caches
        for a, b in [(0, 5), (5, 6), (6, 17), (17, 24)]:
            chunks.append(model.decode(z[..., a:b], add_noise=False))
    assert whole.abs().max() > 1e-3
    torch.testing.assert_close(torch.cat(frames, -1), whole, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.cat(chunks, -1), whole, atol=1e-5, rtol=1e-4)


def test_streaming_encode_equals_whole_encode() -> None:
    torch.manual_seed(1)
    cfg = make_config("tiny")
    model = VAE(cfg).eval()
    x = torch.randn(1, 1, cfg.ratio * 12)
    with torch.no_grad():
        whole = model.encode(x)
        set_streaming(model, True)
        parts = [model.encode(x[..., i * cfg.ratio : (i + 1) * cfg.ratio]) for i in range(12)]
    torch.testing.assert_close(torch.cat(parts, -1), whole, atol=1e-5, rtol=1e-4)


def test_scripted_streaming_export_continues_signal(tmp_path: Path) -> None:
    torch.manual_seed(2)
    cfg = make_config("tiny", noise=False)
    model = VAE(cfg)
    whole_ts = tmp_path / "whole.ts"
    stream_ts = tmp_path / "stream.ts"
    save_scripted(script_model(model, cfg, streaming=False), whole_ts)
    save_scripted(script_model(model, cfg, streaming=True), stream_ts)
    whole, stream = load_scripted(whole_ts), load_scripted(stream_ts)
    z = torch.randn(1, cfg.latent_size, 16)
    expected = whole.decode(z)
    got = torch.cat([stream.decode(z[..., i : i + 1]) for i in range(16)], -1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    ("channels", "latent_size", "ratio", "streaming"),
    [(1, 4, 64, True), (2, 8, 256, False), (1, 16, 2048, True)],
)
def test_export_round_trip_nn_tilde_interface(
    tmp_path: Path, channels: int, latent_size: int, ratio: int, streaming: bool
) -> None:
    path = make_tiny_model(
        tmp_path / "m.ts",
        channels=channels,
        latent_size=latent_size,
        ratio=ratio,
        streaming=streaming,
    )
    m = load_scripted(path)
    assert m.get_methods() == ["encode", "decode", "forward"]
    assert isinstance(m.get_attributes(), list)
    assert m.sr == 48000 and m.get_sample_rate() == 48000
    assert m.decode_params.tolist() == [latent_size, ratio, channels, 1]
    assert m.encode_params.tolist() == [channels, 1, latent_size, ratio]
    assert m.forward_params.tolist() == [channels, 1, channels, 1]
    for method in m.get_methods():
        in_ch, in_ratio, out_ch, out_ratio = getattr(m, f"{method}_params").tolist()
        n = 4 * ratio
        for batch in (1, 2):
            x = torch.randn(batch, in_ch, n // in_ratio)
            y = getattr(m, method)(x)
            assert y.shape == (batch, out_ch, n // out_ratio), method
            assert y.dtype == torch.float32
            assert torch.isfinite(y).all()
    card = tomllib.loads(path.with_suffix(".toml").read_text())
    assert card["latent_size"] == latent_size and card["ratio"] == ratio
    assert card["model_delay_samples"] == 0 and card["causal"] is True


def test_tiny_model_is_audible_and_deterministic(tmp_path: Path) -> None:
    a = load_scripted(make_tiny_model(tmp_path / "a.ts", seed=3, streaming=False))
    b = load_scripted(make_tiny_model(tmp_path / "b.ts", seed=3, streaming=False))
    z = torch.full((1, 4, 8), 1.5)
    torch.manual_seed(0)
    ya = a.decode(z)
    torch.manual_seed(0)
    yb = b.decode(z)
    assert ya.pow(2).mean().sqrt() > 0.01
    torch.testing.assert_close(ya, yb)


def test_streaming_export_of_non_causal_model_is_refused() -> None:
    from models.errors import ModelsError

    cfg = make_config("tiny", causal=False)
    with pytest.raises(ModelsError, match="causal"):
        script_model(VAE(cfg), cfg, streaming=True)


def test_onnx_explicit_state_decoder_matches_torchscript(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from models.onnx_export import OnnxStreamingDecoder, export_onnx

    torch.manual_seed(4)
    cfg = make_config("tiny", noise=False)
    a, b = VAE(cfg), VAE(cfg)
    b.load_state_dict(a.state_dict())
    ts = script_model(a, cfg, streaming=True)
    ort = OnnxStreamingDecoder(export_onnx(b, cfg))
    z = torch.randn(10, 1, cfg.latent_size, 1)
    y_ts = torch.cat([ts.decode(f) for f in z], -1).numpy()
    y_ort = np.concatenate([ort.decode(f.numpy()) for f in z], -1)
    np.testing.assert_allclose(y_ort, y_ts, atol=1e-5)

"""Model runtime on generated fixture models: mono, stereo, wrong interface, corrupt file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from instrument.engine.runtime import ModelError, ModelRuntime
from tests.modelfixtures import corrupt_model, save, wrong_interface_model


def test_mono_model_loads_and_reports_its_interface(mono_model: Path) -> None:
    rt = ModelRuntime(mono_model)
    i = rt.info
    assert (i.samplerate, i.latent_size, i.ratio, i.channels) == (48000, 4, 64, 1)
    assert i.has_encode and "decode" in i.methods
    assert i.delay_samples is None  # no card beside it: unknown, not zero
    y = rt.decode(np.zeros((4, 3), np.float32))
    assert y.shape == (1, 3 * 64) and y.dtype == np.float32


def test_stereo_model_decodes_two_channels(stereo_model: Path) -> None:
    rt = ModelRuntime(stereo_model)
    assert rt.info.channels == 2 and rt.info.ratio == 128
    y = rt.decode(np.ones((4, 2), np.float32))
    assert y.shape == (2, 256)
    assert np.abs(y).max() > 0.01


def test_card_gives_model_delay(mono_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "withcard.ts"
    copy.write_bytes(mono_model.read_bytes())
    copy.with_suffix(".toml").write_text("delay_samples = 512\nsamplerate = 48000\n")
    assert ModelRuntime(copy).info.delay_samples == 512


def test_wrong_interface_names_what_is_missing(tmp_path: Path) -> None:
    path = wrong_interface_model(tmp_path / "forward-only.ts")
    with pytest.raises(ModelError, match=r"no 'decode' method \(found methods: forward\)"):
        ModelRuntime(path)


def test_corrupt_file_is_a_model_error(tmp_path: Path) -> None:
    path = corrupt_model(tmp_path / "corrupt.ts")
    with pytest.raises(ModelError, match="not a loadable TorchScript model"):
        ModelRuntime(path)


def test_missing_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        ModelRuntime(tmp_path / "nope.ts")


def test_bad_shapes_and_missing_rate_are_caught(tmp_path: Path) -> None:
    import torch

    class NoRate(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("decode_params", torch.tensor([2, 16, 1, 1]))

        @torch.jit.export
        def decode(self, z: torch.Tensor) -> torch.Tensor:
            return torch.zeros(z.shape[0], 1, z.shape[-1] * 16)

    class WrongShape(NoRate):
        def __init__(self) -> None:
            super().__init__()
            self.sr = 44100

        @torch.jit.export
        def decode(self, z: torch.Tensor) -> torch.Tensor:
            return torch.zeros(z.shape[0], 1, 10)

    with pytest.raises(ModelError, match="sample rate"):
        ModelRuntime(save(NoRate(), tmp_path / "norate.ts"))
    with pytest.raises(ModelError, match=r"decode returned shape \(1, 10\)"):
        ModelRuntime(save(WrongShape(), tmp_path / "wrongshape.ts"))


def test_fresh_copies_have_independent_streaming_state(mono_model: Path) -> None:
    rt = ModelRuntime(mono_model)
    z = np.full((4, 2), 1.0, np.float32)
    a = rt.fresh().decode(z)
    b = rt.fresh()
    b.decode(z)  # advance b's oscillator phase
    assert np.array_equal(a, rt.fresh().decode(z))
    assert not np.array_equal(a, b.decode(z))


def test_tiny_model_from_models_package_loads(tmp_path: Path) -> None:
    testing = pytest.importorskip("models.testing")
    path = testing.make_tiny_model(tmp_path / "tiny.ts", channels=1, latent_size=4, ratio=64)
    rt = ModelRuntime(path)
    assert rt.info.latent_size == 4 and rt.info.ratio == 64
    y = rt.decode(np.ones((4, 4), np.float32))
    assert y.shape == (1, 256) and np.all(np.isfinite(y))

"""The bundled default model: loads, matches its card, and sounds varied across its space."""

import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from models.evaluate import loudness_db, spectral_centroid_hz
from models.export import load_scripted

pytestmark = pytest.mark.filterwarnings(
    r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning"
)

DEFAULT = Path(__file__).resolve().parents[1] / "models" / "default" / "sillage-default.ts"


@pytest.fixture(scope="module")
def model():
    if not DEFAULT.is_file():
        pytest.skip("default model not built yet")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_scripted(DEFAULT)
    torch.set_num_threads(before)


def test_card_matches_model_and_limits(model) -> None:
    card = tomllib.loads(DEFAULT.with_suffix(".toml").read_text())
    assert card["sample_rate"] == model.sr == 48000
    assert card["ratio"] == model.decode_params[1] <= 256
    assert 8 <= card["latent_size"] == model.decode_params[0] <= 16
    assert card["channels"] == 1 and card["causal"] is True and card["delay_samples"] == 0
    assert card["steps"] > 0 and card["commands"]["train"].startswith("python -m models.train")
    assert DEFAULT.stat().st_size <= 10_000_000


def test_default_model_renders_non_silent_varied_audio(model) -> None:
    latent, ratio = int(model.decode_params[0]), int(model.decode_params[1])
    hold = int(0.4 * 48000) // ratio  # frames per grid point
    points = [torch.zeros(latent)]
    for d in range(latent):
        for v in (-2.0, 2.0):
            z = torch.zeros(latent)
            z[d] = v
            points.append(z)
    zs = torch.cat([p[:, None].expand(-1, hold) for p in points], 1)[None]
    torch.manual_seed(0)
    y = model.decode(zs)[0, 0].numpy()
    assert np.isfinite(y).all() and np.abs(y).max() < 4.0
    seg = hold * ratio
    cents, louds = [], []
    for i in range(len(points)):
        s = y[i * seg + seg // 2 : (i + 1) * seg]  # second half: past the transition
        cents.append(spectral_centroid_hz(s, 48000))
        louds.append(loudness_db(s))
    assert louds[0] > -45, "the centre of the latent space (where playing starts) is silent"
    assert sum(v > -60 for v in louds) >= 0.75 * len(louds), louds
    assert max(cents) - min(cents) > 1000, cents
    assert max(louds) - min(louds) > 10, louds


def test_default_model_streams_frame_by_frame(model) -> None:
    latent = int(model.decode_params[0])
    frames = [model.decode(torch.full((1, latent, 1), 0.5)) for _ in range(8)]
    y = torch.cat(frames, -1)
    assert y.shape == (1, 1, 8 * int(model.decode_params[1]))
    assert float(y[..., -256:].pow(2).mean()) > 1e-6

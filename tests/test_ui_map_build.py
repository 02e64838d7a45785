"""Map building: encode a tiny corpus, describe each frame, fit, save (UMAP fits are slow)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mappings.latentmap import LatentMap
from ui.corpus import MapBuildError, frame_descriptors
from ui.map import FitParams, build_map

ROOT = Path(__file__).resolve().parent.parent
SR = 48000


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.testing import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("m") / "tiny.ts", latent_size=4, ratio=64)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    # Glides, so no two frames are identical (the builder drops duplicate latents).
    t = np.arange(int(1.5 * SR)) / SR
    low = 0.5 * np.sin(2 * np.pi * (200 * t + 30 * t**2))
    sf.write(root / "low.wav", low.astype(np.float32), SR)
    # Another rate and stereo: the builder resamples and mixes down.
    t44 = np.arange(int(1.0 * 44100)) / 44100
    high = 0.05 * np.sin(2 * np.pi * (2800 * t44 + 200 * t44**2))
    (root / "sub").mkdir()
    sf.write(root / "sub" / "high.wav", np.column_stack([high, high]).astype(np.float32), 44100)
    sf.write(root / "silence.wav", np.zeros(SR // 2, np.float32), SR)
    return root


def test_descriptors_of_a_sine() -> None:
    t = np.arange(SR) / SR
    loud, cent = frame_descriptors(
        np.sin(2 * np.pi * 1000 * t).astype(np.float32), ratio=256, samplerate=SR
    )
    assert loud.shape == cent.shape == (SR // 256,)
    assert np.median(loud) == pytest.approx(-3.0, abs=0.2)
    assert np.median(cent) == pytest.approx(1000, rel=0.05)


def test_build_encodes_and_describes(tiny_model: Path, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "map.npz"
    built = build_map(tiny_model, corpus, out, fit=FitParams(method="pca"), min_db=-60.0)
    m = LatentMap.load(out)
    assert m.latent_size == 4 and m.n_points == built.n_points
    assert sorted(m.source_files) == ["low.wav", "silence.wav", "sub/high.wav"]
    assert m.xy.min() == 0.0 and m.xy.max() == 1.0
    assert m.source_index is not None and m.time_s is not None
    assert m.loudness_db is not None and m.centroid_hz is not None
    by_name = {name: m.source_index == i for i, name in enumerate(m.source_files)}
    assert not by_name["silence.wav"].any(), "silent frames should be left out"
    low, high = by_name["low.wav"], by_name["sub/high.wav"]
    # 1.5 s at ratio 64 = 1125 frames, 1 s at 44.1 kHz resampled = 750 (less duplicates/edges)
    assert 1000 <= low.sum() <= 1125 and 650 <= high.sum() <= 750
    assert np.median(m.loudness_db[low]) > np.median(m.loudness_db[high]) + 10
    assert np.median(m.centroid_hz[high]) > 5 * np.median(m.centroid_hz[low])
    assert np.all(np.diff(m.time_s[low]) > 0)
    assert m.params["model"]["samplerate"] == SR and m.params["model"]["ratio"] == 64
    assert m.params["fit"]["method"] == "pca"
    i = int(np.flatnonzero(low)[10])
    assert m.to_xy(m.latents[i]) == pytest.approx(tuple(m.xy[i]), abs=1e-6)
    assert out.stat().st_size < 200_000

    # The map records which export it was built from; the app warns on another one.
    from mappings.latentmap import model_digest
    from ui.app import stale_warning

    assert m.params["model"]["sha1"] == model_digest(tiny_model)
    assert stale_warning(m, tiny_model) == ""
    newer = tmp_path / "tiny.ts"
    newer.write_bytes(tiny_model.read_bytes() + b"retrained")
    assert "older tiny.ts" in stale_warning(m, newer)


def test_decoder_only_model_is_sampled(tmp_path: Path) -> None:
    import torch

    class DecoderOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.sr = SR
            self.register_buffer("decode_params", torch.tensor([3, 32, 1, 1]))

        @torch.jit.export
        def decode(self, z: torch.Tensor) -> torch.Tensor:
            t = torch.arange(32, dtype=torch.float32) / 32.0
            pitch = (1.0 + z[:, 0].abs()).unsqueeze(-1)  # (1, n, 1)
            amp = (0.1 + z[:, 1].abs()).unsqueeze(-1)
            return (torch.sin(25.0 * pitch * t) * amp).reshape(1, 1, -1)

    model = tmp_path / "dec.ts"
    with warnings.catch_warnings():  # torch 2.13 deprecates torch.jit; nn~ models are jit
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(DecoderOnly()).save(str(model))
    m = build_map(model, None, tmp_path / "m.npz", fit=FitParams(method="pca"), sample_frames=400)
    assert m.latent_size == 3 and 350 <= m.n_points <= 400
    assert m.source_files == ["(sampled latent walk)"]
    assert m.params["model"]["encoded"] is False
    assert np.isfinite(m.loudness_db).all()  # type: ignore[arg-type]


def test_cli_errors_name_the_problem(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "ui.map", "build", "--model", str(tmp_path / "nope.ts"),
           str(tmp_path), "--out", str(tmp_path / "m.npz")]  # fmt: skip
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1
    assert "MapBuildError" in result.stderr and "nope.ts" in result.stderr
    with pytest.raises(MapBuildError, match="min_dist"):
        FitParams(min_dist=2.0)


@pytest.mark.slow
def test_umap_build_cli(tiny_model: Path, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "umap.npz"
    cmd = [sys.executable, "-m", "ui.map", "build", "--model", str(tiny_model), str(corpus),
           "--out", str(out), "--neighbors", "10"]  # fmt: skip
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "encoding" in result.stderr  # the tqdm progress bar
    m = LatentMap.load(out)
    assert m.params["fit"]["method"] == "umap" and m.params["fit"]["n_neighbors"] == 10
    assert m.params["fit"]["umap_version"].startswith("0.5")
    for i in range(0, m.n_points, 97):
        assert m.to_xy(m.latents[i]) == pytest.approx(tuple(m.xy[i]), abs=1e-6)
        np.testing.assert_array_equal(m.to_latent(*m.xy[i]), m.latents[i])
    info = subprocess.run([sys.executable, "-m", "ui.map", "info", str(out)], cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    assert info.returncode == 0 and f"points      {m.n_points}" in info.stdout


@pytest.mark.slow
def test_app_builds_and_caches_a_missing_map(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import queue
    import threading

    from mappings.latentmap import find_map

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert find_map(tiny_model) is None
    cmd = [sys.executable, "-m", "ui", "--model", str(tiny_model), "--listen", "0",
           "--engine", "127.0.0.1:9"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout
    lines: queue.Queue[str] = queue.Queue()
    pump = threading.Thread(target=lambda: [lines.put(line) for line in out], daemon=True)
    pump.start()
    try:
        while not lines.get(timeout=600).startswith("Sillage UI: map built and cached"):
            pass
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        pump.join(timeout=10)
        out.close()
    cached = find_map(tiny_model)
    assert cached is not None and cached.is_relative_to(tmp_path / "cache")
    assert LatentMap.load(cached).params["model"]["encoded"] is False


def test_default_map_ships_with_the_default_model() -> None:
    import tomllib

    shipped = ROOT / "models" / "default" / "sillage-default.map.npz"
    card = ROOT / "models" / "default" / "sillage-default.toml"
    if not card.is_file():
        pytest.skip("no default model yet")
    assert shipped.is_file(), "build it: see docs/ui.md, 'The default map'"
    assert shipped.stat().st_size <= 2_000_000
    m = LatentMap.load(shipped)
    info = tomllib.loads(card.read_text())
    assert m.latent_size == info["latent_size"]
    assert m.params["model"]["ratio"] == info["ratio"]
    assert m.params["model"]["encoded"] is True and m.params["fit"]["method"] == "umap"
    assert 5000 <= m.n_points <= 20000

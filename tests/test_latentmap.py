"""The live map transforms: exact on fitted points, continuous between, fast, light to import."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mappings.latentmap import LatentMap, LatentMapError, normalise_xy

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def fitted() -> LatentMap:
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(2000, 8)).astype(np.float32)
    xy, _ = normalise_xy(rng.normal(size=(2000, 2)))
    return LatentMap(
        latents, xy, labels={"breath": (0.25, 0.75)}, regions={"calm": (0, 0, 0.5, 0.5)}
    )


def test_exact_on_fitted_points(fitted: LatentMap) -> None:
    for i in range(0, fitted.n_points, 37):
        assert fitted.to_xy(fitted.latents[i]) == pytest.approx(tuple(fitted.xy[i]), abs=1e-6)
        z = fitted.to_latent(*fitted.xy[i])
        assert z.dtype == np.float32 and z.shape == (fitted.latent_size,)
        np.testing.assert_array_equal(z, fitted.latents[i])


def _max_step(path: np.ndarray) -> float:
    return float(np.abs(np.diff(path, axis=0)).max())


def test_continuous_between_points(fitted: LatentMap) -> None:
    # Fine walks through both spaces: outputs change little when inputs change little,
    # including where the neighbour set changes and near fitted points.
    t = np.linspace(0.0, 1.0, 4001)[:, None]
    a, b = fitted.xy[3].astype(np.float64), fitted.xy[1500].astype(np.float64)
    z_path = np.array([fitted.to_latent(*p) for p in (1 - t) * a + t * b])
    assert _max_step(z_path) < 0.15, "to_latent jumps along a fine path on the map"
    za, zb = fitted.latents[3].astype(np.float64), fitted.latents[1500].astype(np.float64)
    xy_path = np.array([fitted.to_xy(z) for z in (1 - t) * za + t * zb])
    assert _max_step(xy_path) < 0.05, "to_xy jumps along a fine path in latent space"
    # Halving the step roughly halves the largest change: no discontinuity hides in the path.
    fine = np.linspace(0.0, 1.0, 8001)[:, None]
    z_fine = np.array([fitted.to_latent(*p) for p in (1 - fine) * a + fine * b])
    assert _max_step(z_fine) < 0.75 * _max_step(z_path)


def test_outputs_stay_in_the_hull(fitted: LatentMap) -> None:
    rng = np.random.default_rng(1)
    for z in rng.normal(size=(200, 8)) * 3:
        x, y = fitted.to_xy(z)
        assert 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0
    lo, hi = fitted.latents.min(axis=0), fitted.latents.max(axis=0)
    for x, y in rng.uniform(-0.2, 1.2, size=(200, 2)):
        z = fitted.to_latent(x, y)
        assert np.all(z >= lo - 1e-6) and np.all(z <= hi + 1e-6)


def test_transform_time_per_call(fitted: LatentMap) -> None:
    z = fitted.latents[:200] + 0.01
    start = time.perf_counter()
    for row in z:
        fitted.to_xy(row)
        fitted.to_latent(0.3, 0.7)
    per_call_ms = (time.perf_counter() - start) / (2 * len(z)) * 1e3
    assert per_call_ms < 0.5


def test_save_load_round_trip(fitted: LatentMap, tmp_path: Path) -> None:
    path = tmp_path / "map.npz"
    fitted.save(path)
    back = LatentMap.load(path)
    np.testing.assert_array_equal(back.latents, fitted.latents)
    np.testing.assert_array_equal(back.xy, fitted.xy)
    assert back.latent_size == 8 and back.k == fitted.k
    assert list(back.labels) == ["breath"]
    assert back.labels["breath"] == pytest.approx((0.25, 0.75))
    assert back.regions["calm"] == pytest.approx((0, 0, 0.5, 0.5))
    with np.load(path, allow_pickle=False) as f:  # readable without this module, no pickle
        assert list(f["label_names"]) == ["breath"]
        np.testing.assert_allclose(f["label_xy"], [[0.25, 0.75]])


def test_small_and_degenerate_maps() -> None:
    one = LatentMap(np.ones((1, 3)), np.full((1, 2), 0.5))
    assert one.to_xy([0, 0, 0]) == (0.5, 0.5)
    np.testing.assert_array_equal(one.to_latent(0.1, 0.9), np.ones(3, np.float32))
    two = LatentMap(np.array([[0.0], [1.0]]), np.array([[0.0, 0.0], [1.0, 1.0]]))
    assert two.to_latent(0.0, 0.0)[0] == 0.0
    with pytest.raises(LatentMapError, match="xy must have shape"):
        LatentMap(np.zeros((3, 2)), np.zeros((2, 2)))
    with pytest.raises(LatentMapError, match="finite"):
        LatentMap(np.full((3, 2), np.nan), np.zeros((3, 2)))
    with pytest.raises(LatentMapError, match="latent of size 1"):
        two.to_xy([0.0, 1.0])
    with pytest.raises(LatentMapError, match="finite"):
        two.to_xy([float("nan")])
    with pytest.raises(LatentMapError, match="finite"):
        two.to_latent(float("inf"), 0.5)


def test_missing_arrays_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, latents=np.zeros((3, 2)))
    with pytest.raises(LatentMapError, match="missing array 'xy'"):
        LatentMap.load(path)


def test_import_is_light() -> None:
    # The engine imports this module: no Qt, no torch, no umap behind it.
    code = (
        "import sys, mappings.latentmap; "
        "bad = [m for m in ('torch', 'PySide6', 'umap', 'numba', 'pyqtgraph', 'ui') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_find_map_beside_then_cached(
    fitted: LatentMap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mappings.latentmap import find_map, map_cache_path

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = tmp_path / "voice.ts"
    model.write_bytes(b"not really a model")
    assert find_map(model) is None
    cached = map_cache_path(model)
    assert cached.parent == tmp_path / "cache" / "sillage" / "maps"
    assert cached.name.startswith("voice-") and cached.name.endswith(".map.npz")
    cached.parent.mkdir(parents=True)
    fitted.save(cached)
    assert find_map(model) == cached
    beside = tmp_path / "voice.map.npz"
    fitted.save(beside)
    assert find_map(model) == beside  # a shipped map wins over a cached one
    model.write_bytes(b"retrained")  # another model, another cache entry
    assert map_cache_path(model) != cached

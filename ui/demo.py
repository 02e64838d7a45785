"""A synthetic map for screenshots, tests and benchmarks when no real map is at hand.

Clusters in 2-D, lifted into the latent space by a fixed random linear map: no model, no UMAP.
"""

from __future__ import annotations

import numpy as np

from mappings.latentmap import LatentMap, normalise_xy


def demo_map(
    n_points: int = 3000, *, latent_size: int = 8, n_sources: int = 6, seed: int = 0
) -> LatentMap:
    """A map of ``n_points`` in ``n_sources`` curved clusters, with plausible descriptors."""
    rng = np.random.default_rng(seed)
    source = rng.integers(0, n_sources, n_points).astype(np.int32)
    angle = rng.uniform(0, 2 * np.pi, n_sources)
    centre = np.column_stack([np.cos(angle), np.sin(angle)]) * rng.uniform(1.0, 3.0, (n_sources, 1))
    t = rng.uniform(-1, 1, n_points)
    bend = np.column_stack([t, 0.4 * t**2]) * 1.2
    raw = centre[source] + bend + rng.normal(scale=0.18, size=(n_points, 2))
    xy, _ = normalise_xy(raw)
    lift = rng.normal(size=(2, latent_size))
    latents = (raw @ lift + 0.05 * rng.normal(size=(n_points, latent_size))).astype(np.float32)
    loudness = (-40 + 30 * xy[:, 1] + rng.normal(scale=3, size=n_points)).astype(np.float32)
    centroid = (200 * 2 ** (6 * xy[:, 0])).astype(np.float32)
    return LatentMap(
        latents=latents,
        xy=xy,
        source_files=[f"demo-{i}.wav" for i in range(n_sources)],
        source_index=source,
        time_s=rng.uniform(0, 60, n_points).astype(np.float32),
        loudness_db=loudness,
        centroid_hz=centroid,
        params={"model": {"name": "demo", "samplerate": 48000}, "fit": {"method": "synthetic"}},
    )

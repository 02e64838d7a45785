"""Build a latent map: ``python -m ui.map build --model MODEL.ts [AUDIO_DIR] --out MAP.npz``.

Encodes a corpus with the model's ``encode`` (or, for a decoder-only model or when no corpus is
given, samples a smooth walk through the latent space and decodes it), computes loudness and
spectral centroid per latent frame, fits a 2-D layout (UMAP by default) and writes a
``sillage-map-1`` file (see :mod:`mappings.latentmap`).

UMAP's first fit in a process costs about a minute here (numba compiles what it cannot cache):
this module runs as its own process, never inside the engine. torch and umap are imported only
when a build runs, so ``ui`` can import this module cheaply.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mappings.latentmap import DEFAULT_K, LatentMap, map_cache_path, model_digest, normalise_xy
from ui.corpus import (
    MapBuildError,
    NnModel,
    audio_files,
    encode_corpus,
    sample_decoder,
    select_frames,
)


@dataclass(frozen=True, slots=True)
class FitParams:
    """How the 2-D layout is fitted. Saved in the map so a fit can be reproduced."""

    method: str = "umap"
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "euclidean"
    seed: int = 0
    k: int = DEFAULT_K

    def __post_init__(self) -> None:
        if self.method not in ("umap", "pca"):
            raise MapBuildError(f"method must be 'umap' or 'pca', got {self.method!r}")
        if self.n_neighbors < 2:
            raise MapBuildError(f"n_neighbors must be >= 2, got {self.n_neighbors}")
        if not 0.0 <= self.min_dist <= 1.0:
            raise MapBuildError(
                f"min_dist must be in [0, 1] (UMAP's spread is 1), got {self.min_dist}"
            )


# ---------------------------------------------------------------------- the 2-D fit
def fit_layout(
    latents: NDArray[np.float32], fit: FitParams
) -> tuple[NDArray[np.float64], dict[str, Any]]:
    """Fit 2-D positions to ``latents``; return them and what was actually used."""
    n = len(latents)
    info: dict[str, Any] = {"method": fit.method, "seed": fit.seed}
    start = time.perf_counter()
    # UMAP's spectral initialisation needs a handful of points; below that PCA is the honest fit.
    if fit.method == "pca" or n <= max(4, fit.n_neighbors // 3):
        info["method"] = "pca"
        xy = _pca2(latents)
    else:
        import umap  # heavy: numba compile on the first fit of the process

        n_neighbors = min(fit.n_neighbors, n - 1)
        with warnings.catch_warnings():
            # "n_jobs value 1 overridden to 1 by setting random_state": reproducibility wins.
            warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
            reducer = umap.UMAP(
                n_components=2,
                n_neighbors=n_neighbors,
                min_dist=fit.min_dist,
                metric=fit.metric,
                random_state=fit.seed,
            )
            xy = np.asarray(reducer.fit_transform(latents), dtype=np.float64)
        info.update(
            n_neighbors=n_neighbors,
            min_dist=fit.min_dist,
            metric=fit.metric,
            umap_version=_version("umap-learn"),
        )
    info["fit_s"] = round(time.perf_counter() - start, 3)
    return xy, info


def _pca2(latents: NDArray[np.float32]) -> NDArray[np.float64]:
    x = latents.astype(np.float64) - latents.mean(axis=0)
    if x.shape[1] == 1:
        return np.column_stack([x[:, 0], np.zeros(len(x))])
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def _version(dist: str) -> str:
    from importlib.metadata import version

    try:
        return version(dist)
    except Exception:
        return "unknown"


# ---------------------------------------------------------------------- the whole build
def build_map(
    model_path: str | os.PathLike[str],
    audio_dir: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    *,
    fit: FitParams = FitParams(),
    max_points: int = 20000,
    min_db: float | None = -60.0,
    sample_frames: int = 10000,
) -> LatentMap:
    """Encode (or sample), describe, fit and save a map; return it.

    Parameters
    ----------
    model_path : path-like
        TorchScript model with the nn~ interface.
    audio_dir : path-like or None
        Corpus folder (or one file). ``None``, or a decoder-only model, samples the latent space.
    out : path-like
        Where to write the ``.npz``.
    fit : FitParams
        Layout parameters.
    max_points : int
        Most points kept (evenly subsampled beyond that).
    min_db : float or None
        Frames quieter than this (RMS dBFS) are left out; ``None`` keeps all.
    sample_frames : int
        Frames decoded when sampling the latent space.
    """
    started = time.perf_counter()
    model = NnModel.load(model_path)
    if audio_dir is not None and model.has_encode:
        root = Path(audio_dir)
        frames = encode_corpus(model, audio_files(root), root=root if root.is_dir() else None)
        corpus: dict[str, Any] = {"audio_dir": str(audio_dir), "files": len(frames.source_files)}
    else:
        if audio_dir is not None:
            print(
                f"{model.name} has no encode(): sampling its latent space instead", file=sys.stderr
            )
        frames = sample_decoder(model, sample_frames, seed=fit.seed)
        corpus = {"sampled_frames": sample_frames, "std": 1.0}
    n_total = len(frames.latents)
    frames = select_frames(frames, max_points=max_points, min_db=min_db, seed=fit.seed)
    print(f"fitting {fit.method} on {len(frames.latents)} of {n_total} frames", file=sys.stderr)
    raw, fit_info = fit_layout(frames.latents, fit)
    xy, bbox = normalise_xy(raw)
    params = {
        "model": {
            "name": model.name,
            "path": str(model_path),
            "sha1": model_digest(model_path),
            "samplerate": model.samplerate,
            "ratio": model.ratio,
            "latent_size": model.latent_size,
            "encoded": bool(audio_dir is not None and model.has_encode),
        },
        "corpus": dict(corpus, frames_total=n_total, min_db=min_db, max_points=max_points),
        "fit": fit_info,
        "bbox": bbox.tolist(),
        "build_s": round(time.perf_counter() - started, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    result = LatentMap(
        latents=frames.latents,
        xy=xy,
        k=fit.k,
        source_files=frames.source_files,
        source_index=frames.source_index,
        time_s=frames.time_s,
        loudness_db=frames.loudness_db,
        centroid_hz=frames.centroid_hz,
        params=params,
    )
    result.save(out)
    return result


# ---------------------------------------------------------------------- cache for first run
def start_cached_build(
    model_path: str | os.PathLike[str], audio_dir: str | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    """Build and cache a model's map in a separate process (UMAP's compile stays out of ours)."""
    out = map_cache_path(model_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "ui.map", "build", "--model", str(model_path), "--out", str(out)]
    if audio_dir:
        cmd.insert(-2, str(audio_dir))
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(cmd, cwd=root)
    return proc, out


def iter_summary(m: LatentMap) -> Iterator[str]:
    """Lines describing a map, for ``python -m ui.map info``."""
    yield f"points      {m.n_points}"
    yield f"latent size {m.latent_size}"
    yield f"k           {m.k}"
    yield f"sources     {len(m.source_files)}"
    yield f"labels      {', '.join(m.labels) or '-'}"
    yield f"regions     {', '.join(m.regions) or '-'}"
    yield "params      " + json.dumps(m.params, indent=2).replace("\n", "\n            ")


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m ui.map", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="encode a corpus and fit a map")
    b.add_argument(
        "audio_dir", nargs="?", help="corpus folder or file (omit to sample the latent space)"
    )
    b.add_argument("--model", required=True, help="TorchScript model with the nn~ interface")
    b.add_argument("--out", required=True, help="output MAP.npz")
    b.add_argument("--method", choices=("umap", "pca"), default="umap")
    b.add_argument("--neighbors", type=int, default=15, help="UMAP n_neighbors (default 15)")
    b.add_argument("--min-dist", type=float, default=0.1, help="UMAP min_dist (default 0.1)")
    b.add_argument("--metric", default="euclidean")
    b.add_argument("--k", type=int, default=DEFAULT_K, help="neighbours for the live transforms")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--max-points", type=int, default=20000)
    b.add_argument("--min-db", type=float, default=-60.0, help="leave out quieter frames")
    b.add_argument("--keep-silence", action="store_true", help="keep every frame")
    b.add_argument("--sample-frames", type=int, default=10000, help="frames when sampling")
    i = sub.add_parser("info", help="describe a map file")
    i.add_argument("map")
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            for line in iter_summary(LatentMap.load(args.map)):
                print(line)
            return
        fit = FitParams(
            method=args.method,
            n_neighbors=args.neighbors,
            min_dist=args.min_dist,
            metric=args.metric,
            seed=args.seed,
            k=args.k,
        )
        m = build_map(
            args.model,
            args.audio_dir,
            args.out,
            fit=fit,
            max_points=args.max_points,
            min_db=None if args.keep_silence else args.min_db,
            sample_frames=args.sample_frames,
        )
        print(
            f"wrote {args.out}: {m.n_points} points, latent size {m.latent_size}, "
            f"{m.params['fit']['method']} fit {m.params['fit']['fit_s']} s, "
            f"build {m.params['build_s']} s"
        )
    except (MapBuildError, OSError, ValueError) as e:
        parser.exit(1, f"{type(e).__name__}: {e}\n")


if __name__ == "__main__":
    main()

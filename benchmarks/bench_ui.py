"""UI benchmark: cursor transform time, offscreen frame rate, map build time.

    python benchmarks/bench_ui.py [--quick] [--model MODEL.ts]

Goals: transform <= 0.5 ms per cursor update; >= 60 fps offscreen with 20,000 points and a
moving cursor; map build time for 10,000 frames, excluding and including UMAP's first-fit
compile (measured as two builds in one fresh process). JSON to stdout and to
``benchmarks/results/ui.json``. ``--quick`` skips the map build (minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402

from benchmarks.common import cpu  # noqa: E402
from mappings.latentmap import LatentMap, normalise_xy  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "ui.json"
N_POINTS = 20000
BUILD_FRAMES = 10000


def _stats_ms(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1e3
    return {
        "mean_ms": round(float(a.mean()), 4),
        "p50_ms": round(float(np.percentile(a, 50)), 4),
        "p99_ms": round(float(np.percentile(a, 99)), 4),
    }


def bench_transform(
    latent_size: int = 8, calls: int = 5000, map_path: Path | None = None
) -> dict[str, Any]:
    """Time to_xy and to_latent per call (one call per cursor update).

    Without ``map_path``: a 20,000-point map of Gaussian latents, the worst case for a k-d
    tree (no low-dimensional structure). With it: a real map, latents near its points.
    """
    rng = np.random.default_rng(0)
    if map_path is None:
        latents = rng.normal(size=(N_POINTS, latent_size)).astype(np.float32)
        xy, _ = normalise_xy(rng.normal(size=(N_POINTS, 2)))
        m = LatentMap(latents, xy)
        walk = np.cumsum(rng.normal(scale=0.05, size=(calls, latent_size)), axis=0)
    else:
        m = LatentMap.load(map_path)
        near = m.latents[rng.integers(0, m.n_points, calls)]
        walk = near + rng.normal(scale=0.05, size=near.shape)
    walk = walk.astype(np.float32)
    points = rng.uniform(0, 1, size=(calls, 2))
    to_xy, to_latent = [], []
    for z, (x, y) in zip(walk, points, strict=True):
        t0 = time.perf_counter()
        m.to_xy(z)
        t1 = time.perf_counter()
        m.to_latent(x, y)
        t2 = time.perf_counter()
        to_xy.append(t1 - t0)
        to_latent.append(t2 - t1)
    return {
        "map": str(map_path.relative_to(ROOT)) if map_path else "synthetic gaussian",
        "points": m.n_points,
        "latent_size": m.latent_size,
        "k": m.k,
        "to_xy": _stats_ms(to_xy),
        "to_latent": _stats_ms(to_latent),
        "goal_ms": 0.5,
    }


def bench_fps(seconds: float = 3.0, projection: bool = False) -> dict[str, Any]:
    """Frames per second offscreen: 20,000 points, the cursor moving every frame."""
    from PySide6 import QtWidgets

    from ui.demo import demo_map
    from ui.window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    m = demo_map(N_POINTS)
    window = MainWindow(m, None, None, colour="loudness")
    window.resize(1100, 720)
    if projection:
        window.set_projection(True, fullscreen=False)
    window.show()
    app.processEvents()
    viewport = window.view.viewport()
    rng = np.random.default_rng(0)
    z = m.latents[0].astype(np.float64)
    frames, start = 0, time.perf_counter()
    frame_s: list[float] = []
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        z += rng.normal(scale=0.05, size=z.shape)
        window.view.set_cursor(*m.to_xy(z))  # what one state message costs the GUI
        viewport.repaint()  # synchronous paint of the whole view
        app.processEvents()
        frame_s.append(time.perf_counter() - t0)
        frames += 1
    elapsed = time.perf_counter() - start
    window.close()
    return {
        "points": N_POINTS,
        "size": [1100, 720],
        "projection": projection,
        "fps": round(frames / elapsed, 1),
        "frame": _stats_ms(frame_s),
        "goal_fps": 60,
    }


_BUILD_CHILD = r"""
import json, sys, time
from ui.map import FitParams, build_map
model, corpus, out, frames = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
runs = []
for i in range(2):
    t0 = time.perf_counter()
    m = build_map(model, corpus, f"{out}.{i}.npz", fit=FitParams(seed=i), max_points=frames,
                  min_db=None)
    runs.append({"total_s": round(time.perf_counter() - t0, 2), "fit_s": m.params["fit"]["fit_s"],
                 "points": m.n_points})
print(json.dumps(runs))
"""


def bench_build(model: Path | None, frames: int = BUILD_FRAMES) -> dict[str, Any]:
    """Build a 10,000-frame map twice in one fresh process: with, then without, the compile."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        if model is None:
            from models.testing import make_tiny_model

            model = make_tiny_model(tmp_path / "tiny.ts", latent_size=8, ratio=64)
        from ui.corpus import NnModel

        info = NnModel.load(model)
        seconds = 1.05 * frames * info.ratio / info.samplerate
        from models.corpus import write_corpus

        corpus = tmp_path / "corpus"
        write_corpus(corpus, minutes=seconds / 60.0 / 0.95)  # train is ~a tenth bigger
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        cmd = [sys.executable, "-c", _BUILD_CHILD, str(model), str(corpus / "train"),
               str(tmp_path / "map"), str(frames)]  # fmt: skip
        t0 = time.perf_counter()
        result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if result.returncode != 0:
            return {"error": result.stderr[-2000:]}
        first, second = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "frames": frames,
        "model": {"name": info.name, "ratio": info.ratio, "latent_size": info.latent_size},
        "including_first_fit_compile_s": first["total_s"],
        "excluding_compile_s": second["total_s"],
        "umap_fit_first_s": first["fit_s"],
        "umap_fit_later_s": second["fit_s"],
        "points": second["points"],
        "process_wall_s": round(wall, 2),
    }


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks, print JSON, write ``benchmarks/results/ui.json``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="skip the map build (minutes)")
    p.add_argument("--model", type=Path, help="model for the build (default: a tiny one)")
    args = p.parse_args(argv)
    result: dict[str, Any] = {
        "benchmark": "ui",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpu": cpu(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "transform": bench_transform(),
        "fps": bench_fps(),
        "fps_projection": bench_fps(projection=True),
    }
    default_map = ROOT / "models" / "default" / "sillage-default.map.npz"
    if default_map.is_file():
        result["transform_default_map"] = bench_transform(map_path=default_map)
    if not args.quick:
        result["build"] = bench_build(args.model)
    text = json.dumps(result, indent=2)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n")


if __name__ == "__main__":
    main()

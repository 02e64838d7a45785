"""Decode speed of a model, one frame per call, batch 1: TorchScript vs onnxruntime vs eager.

``python benchmarks/bench_models.py [--model MODEL.ts] [--frames N] [--threads T]``

Prints JSON and writes ``benchmarks/results/models.json``. With no model file (or
``--model random``) it benchmarks a random-weight model of the default architecture, which
times the same as a trained one. Outputs of the backends are compared with the noise branch
off (noise is random by design).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import cpu  # noqa: E402
from models.config import ModelConfig, make_config  # noqa: E402
from models.export import load_vae, script_model  # noqa: E402
from models.families import set_model_streaming  # noqa: E402
from models.onnx_export import OnnxStreamingDecoder, export_onnx  # noqa: E402
from models.vae import VAE  # noqa: E402

DEFAULT_MODEL = ROOT / "models" / "default" / "sillage-default.ts"


def _vae(source: str) -> tuple[VAE, ModelConfig]:
    if source == "random":
        torch.manual_seed(0)
        cfg = make_config("default")
        return VAE(cfg).eval(), cfg
    model, cfg, _ = load_vae(source)
    return model, cfg


def _timed(fn: Any, n: int, warmup: int = 200) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    times = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t0
    return {
        "mean_us": round(float(times.mean() * 1e6), 1),
        "p50_us": round(float(np.percentile(times, 50) * 1e6), 1),
        "p99_us": round(float(np.percentile(times, 99) * 1e6), 1),
    }


def run(source: str, frames: int, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    frame_s = None
    results: dict[str, Any] = {}
    rng = np.random.default_rng(0)

    # TorchScript, as exported for nn~ / the engine (streaming caches in buffers).
    vae, cfg = _vae(source)
    frame_s = cfg.ratio / cfg.samplerate
    ts = script_model(vae, cfg, streaming=True)
    z = torch.from_numpy(rng.standard_normal((1, cfg.latent_size, 1)).astype(np.float32))
    results["torchscript"] = _timed(lambda: ts.decode(z), frames)

    # Eager torch, same module tree, streaming.
    eager, _ = _vae(source)
    set_model_streaming(eager, True)  # DDSP: the synth's phase and buffers too

    def eager_step() -> None:
        with torch.no_grad():
            eager.decode(z)

    results["torch_eager"] = _timed(eager_step, frames)

    # onnxruntime with explicit state.
    onnx_model, _ = _vae(source)
    onnx_bytes = export_onnx(onnx_model, cfg)
    ort_dec = OnnxStreamingDecoder(onnx_bytes, threads=threads)
    zn = z.numpy()
    results["onnxruntime"] = _timed(lambda: ort_dec.decode(zn), frames)
    results["onnx_bytes"] = len(onnx_bytes)

    # Equality (noise branch off in both).
    a, _ = _vae(source)
    b, _ = _vae(source)
    a.decoder.use_noise = False
    b.decoder.use_noise = False
    ts_q = script_model(a, cfg, streaming=True)
    ort_q = OnnxStreamingDecoder(export_onnx(b, cfg), threads=threads)
    zs = rng.standard_normal((64, 1, cfg.latent_size, 1)).astype(np.float32)
    y_ts = np.concatenate([ts_q.decode(torch.from_numpy(f)).numpy() for f in zs], -1)
    y_ort = np.concatenate([ort_q.decode(f) for f in zs], -1)
    results["max_abs_diff_torchscript_vs_onnx"] = float(np.abs(y_ts - y_ort).max())

    for key in ("torchscript", "torch_eager", "onnxruntime"):
        r = results[key]
        r["realtime_factor"] = round(frame_s / (r["mean_us"] * 1e-6), 1)
    return {
        "benchmark": "models.decode_per_frame",
        "model": source,
        "frames": frames,
        "threads": threads,
        "ratio": cfg.ratio,
        "samplerate": cfg.samplerate,
        "frame_ms": round(frame_s * 1e3, 3),
        "budget_us_for_20x": round(frame_s / 20 * 1e6, 1),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu(),  # model and kernel flags: decode speed differs 3-4x between CPUs
        "results": results,
        "speedup_onnx_vs_torchscript": round(
            results["torchscript"]["mean_us"] / results["onnxruntime"]["mean_us"], 2
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="exported .ts, run dir, or 'random'")
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "models.json"))
    args = parser.parse_args()
    source = args.model or (str(DEFAULT_MODEL) if DEFAULT_MODEL.is_file() else "random")
    result = run(source, args.frames, args.threads)
    text = json.dumps(result, indent=2)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()

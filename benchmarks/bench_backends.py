"""Decode backends and TorchScript speed levers (issue 13), as ratios within one run.

``python -m benchmarks.bench_backends [--rave EXPORT.ts] [--quick]``

(a) backends: per-frame decode through the engine's runtime (``ModelRuntime.decode_frame``),
    TorchScript vs onnxruntime on its checked twin, for the default model and for a
    RAVE-v2-sized decoder (Sillage's VAE at RAVE v2's size: ratio 2048, capacity 96, strides
    4·4·4·2, dilations 1·3·9), interleaved trials; and onnxruntime's thread settings (1 thread;
    2 threads with and without spinning).
(b) TorchScript levers on the RAVE-v2-sized decoder and, when given or found, a RAVE export
    (``tools/make_rave_export.sh``): threads 1/2, ``torch.jit.freeze`` +
    ``optimize_for_inference``, oneDNN fusion, two frames per call. Each beside the plain
    TorchScript baseline of the same run, with the largest output difference.
(c) ``--threads auto``'s rule (2 threads when one frame on 1 takes more than half its budget),
    checked against the 1- and 2-thread timings of (a).

Writes benchmarks/results/backends.json with the CPU model and flags (lscpu).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import ROOT, cpu, emit, with_twin
from instrument.paths import DEFAULT_MODEL

RAVE_CANDIDATES = (Path("/tmp/rave-streaming.ts"), Path("/tmp/w13/rave-v2.ts"))


def _timed_trials(
    fns: dict[str, Callable[[], Any]], frames: int, trials: int
) -> dict[str, dict[str, float]]:
    """``frames × trials`` calls of each function, round-robin call by call (a neighbour's
    burst then slows every variant alike: the machine is shared); per-call µs."""
    calls: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        for _ in range(5):
            fn()
    for _ in range(frames * trials):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            calls[key].append(time.perf_counter() - t0)
    out = {}
    for key in fns:
        a = np.asarray(calls[key]) * 1e6
        out[key] = {
            "median_us": round(float(np.median(a)), 1),
            "p10_us": round(float(np.percentile(a, 10)), 1),
            "p99_us": round(float(np.percentile(a, 99)), 1),
            "calls": int(a.size),
        }
    return out


def v2_sized(tmp: Path) -> Path:
    """Sillage's VAE at RAVE v2's decoder size, random weights, exported with its twin."""
    import torch

    from models.config import make_config
    from models.export import save_scripted, script_model
    from models.families import build_model
    from models.onnx_export import write_twin

    torch.manual_seed(0)
    cfg = make_config(
        "default",
        ratio=2048,
        n_bands=16,
        strides=(4, 4, 4, 2),
        capacity=96,
        res_dilations=(1, 3, 9),
        latent_size=16,
        n_samples=65536,
    )
    model = build_model(cfg)
    path = tmp / "v2-sized.ts"
    save_scripted(script_model(model, cfg, streaming=True), path)  # type: ignore[arg-type]
    write_twin(path)
    return path


def backends(model: Path, frames: int, trials: int) -> dict[str, Any]:
    """TorchScript vs onnxruntime through the runtime, 1 thread; ORT 2 threads ± spinning."""
    import torch

    from instrument.engine.backends import OnnxBackend, OnnxTwin
    from instrument.engine.runtime import ModelRuntime

    torch.set_num_threads(1)
    ModelRuntime.prepare_thread()
    ts = ModelRuntime(model, backend="torch", threads=1)
    ox = ModelRuntime(model, backend="onnx", threads=1)
    info = ts.info
    rng = np.random.default_rng(0)
    zs = np.cumsum(rng.normal(scale=0.05, size=(64, info.latent_size)), axis=0).astype(np.float32)
    state = {"i": 0}

    def z() -> np.ndarray:
        state["i"] = (state["i"] + 1) % len(zs)
        return zs[state["i"]]

    twin = ox.backend.twin  # type: ignore[attr-defined]
    ort2 = OnnxBackend(
        OnnxTwin(
            twin.path,
            latent_size=info.latent_size,
            ratio=info.ratio,
            channels=info.channels,
            threads=2,
        )
    )
    spin = OnnxTwin(
        twin.path, latent_size=info.latent_size, ratio=info.ratio, channels=info.channels, threads=2
    )
    spin_session_options(spin)
    ort2_spin = OnnxBackend(spin)
    fns: dict[str, Callable[[], Any]] = {
        "torchscript_1_thread": lambda: ts.decode_frame(z()),
        "onnx_1_thread": lambda: ox.decode_frame(z()),
        "onnx_2_threads_no_spin": lambda: ort2.decode_frame(z()),
        "onnx_2_threads_spin": lambda: ort2_spin.decode_frame(z()),
    }
    timings = _timed_trials(fns, frames, trials)
    torch.set_num_threads(2)
    ts2 = _timed_trials({"torchscript_2_threads": lambda: ts.decode_frame(z())}, frames, trials)
    torch.set_num_threads(1)
    timings.update(ts2)
    frame_us = info.frame_s * 1e6
    for t in timings.values():
        t["realtime_factor"] = round(frame_us / t["median_us"], 1)
    base = timings["torchscript_1_thread"]["median_us"]
    return {
        "model": model.name,
        "ratio": info.ratio,
        "samplerate": info.samplerate,
        "frame_us": round(frame_us, 1),
        "twin_check_max_diff": ox.twin_diff,
        "timings": timings,
        "speedup_onnx_vs_torchscript_1_thread": round(
            base / timings["onnx_1_thread"]["median_us"], 2
        ),
        "speedup_onnx_2_threads_vs_1": round(
            timings["onnx_1_thread"]["median_us"] / timings["onnx_2_threads_no_spin"]["median_us"],
            2,
        ),
        "spin_vs_no_spin_2_threads": round(
            timings["onnx_2_threads_no_spin"]["median_us"]
            / timings["onnx_2_threads_spin"]["median_us"],
            2,
        ),
        "threads_auto_rule": threads_auto_rule(
            frame_us,
            timings["torchscript_1_thread"]["median_us"],
            timings["torchscript_2_threads"]["median_us"],
        ),
    }


def spin_session_options(twin: Any) -> None:
    """Rebuild ``twin``'s session with spinning on (onnxruntime's default), for comparison."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = twin.threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    import onnx

    from instrument.engine.backends import _noise_as_inputs

    model = onnx.load_from_string(twin.path.read_bytes())
    _noise_as_inputs(model)
    twin.session = ort.InferenceSession(
        model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )


def threads_auto_rule(frame_us: float, one_us: float, two_us: float) -> dict[str, Any]:
    """What ``--threads auto`` would pick from the 1-thread time, and whether 2 was faster."""
    picks = 2 if one_us > 0.5 * frame_us and (os.cpu_count() or 1) >= 2 else 1
    return {
        "one_thread_share_of_budget": round(one_us / frame_us, 3),
        "auto_picks": picks,
        "two_threads_speedup": round(one_us / two_us, 2),
        "note": "2 threads speed a frame up but contend with the audio and control processes on a "
        "2-core machine; auto takes them only when 1 thread leaves less than half the budget",
    }


def torchscript_levers(model: Path, frames: int, trials: int) -> dict[str, Any]:
    """Each lever beside plain TorchScript (1 thread), same frames, output difference."""
    import torch

    from instrument.engine.backends import jit_load
    from models.nn import read_contract

    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    data = model.read_bytes()
    base = jit_load(data, model.name)
    c = read_contract(base, model)
    lat, ratio = c.latent_size, c.ratio
    rng = np.random.default_rng(0)
    z1 = torch.from_numpy(rng.normal(size=(1, lat, 1)).astype(np.float32))
    z2 = torch.from_numpy(rng.normal(size=(1, lat, 2)).astype(np.float32))

    def fresh() -> Any:
        return jit_load(data, model.name).eval()

    variants: dict[str, Callable[[], Any]] = {}
    diffs: dict[str, float | str] = {}
    plain = fresh()
    variants["plain_1_thread"] = lambda: plain.decode(z1)

    def same_output(make: Callable[[], Any], key: str) -> Any:
        """Decode 6 frames through a fresh plain copy and a fresh variant; the largest diff."""
        try:
            a_mod, b_mod = fresh(), make()
            torch.manual_seed(0)
            a = torch.cat([a_mod.decode(z1) for _ in range(6)], -1)
            torch.manual_seed(0)
            b = torch.cat([b_mod.decode(z1) for _ in range(6)], -1)
            diffs[key] = float((a - b).abs().max())
            return make()
        except Exception as exc:
            diffs[key] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            return None

    def frozen() -> Any:
        m = torch.jit.freeze(fresh(), preserved_attrs=["decode"])
        return torch.jit.optimize_for_inference(m, other_methods=["decode"])

    fz = same_output(frozen, "freeze_optimize_for_inference")
    if fz is not None:
        variants["freeze_optimize_for_inference"] = lambda: fz.decode(z1)
    two = fresh()
    variants["two_frames_per_call_per_frame"] = lambda: two.decode(z2)
    results = _timed_trials(variants, frames, trials)
    for stat in ("median_us", "p10_us", "p99_us"):  # one call decodes two frames
        results["two_frames_per_call_per_frame"][stat] = round(
            results["two_frames_per_call_per_frame"][stat] / 2, 1
        )
    # oneDNN fusion is a global switch: timed on its own, right after a plain baseline
    torch.jit.enable_onednn_fusion(True)
    try:
        od = same_output(fresh, "onednn_fusion")
        if od is not None:
            results.update(_timed_trials({"onednn_fusion": lambda: od.decode(z1)}, frames, trials))
    finally:
        torch.jit.enable_onednn_fusion(False)
    results.update(
        _timed_trials({"plain_1_thread_again": lambda: plain.decode(z1)}, frames, trials)
    )
    torch.set_num_threads(2)
    results.update(_timed_trials({"plain_2_threads": lambda: plain.decode(z1)}, frames, trials))
    torch.set_num_threads(1)
    frame_us = ratio / c.samplerate * 1e6
    base_us = statistics.mean(
        [results["plain_1_thread"]["median_us"], results["plain_1_thread_again"]["median_us"]]
    )
    return {
        "model": model.name,
        "ratio": ratio,
        "frame_us": round(frame_us, 1),
        "timings": results,
        "speedup_vs_plain": {
            k: round(base_us / v["median_us"], 2)
            for k, v in results.items()
            if not k.startswith("plain_1")
        },
        "max_abs_diff_vs_plain": diffs,
        "not_tried": {
            "channels_last": "a 4-D (NHWC) memory format: these decoders are 1-D convolutions",
            "MKL_ENABLE_INSTRUCTIONS / oneDNN off": "measured before on AMD: no change "
            "(shared/ARCHITECTURE.md)",
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rave", default=None, help="a RAVE streaming export (.ts) for (b)")
    ap.add_argument("--model", default=str(DEFAULT_MODEL), help="default: the shipped model")
    ap.add_argument("--quick", action="store_true", help="fewer frames")
    args = ap.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit's, at every entry point
    frames, trials = (100, 6) if args.quick else (300, 10)
    big_frames, big_trials = (6, 3) if args.quick else (20, 4)
    result: dict[str, Any] = {"cpu": cpu()}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        model = with_twin(Path(args.model), tmp)
        result["default_model"] = backends(model, frames, trials)
        big = v2_sized(tmp)
        result["rave_v2_sized"] = backends(big, big_frames, big_trials)
        result["torchscript_levers_v2_sized"] = torchscript_levers(big, big_frames, big_trials)
        rave = (
            Path(args.rave)
            if args.rave
            else next((p for p in RAVE_CANDIDATES if p.is_file()), None)
        )
        if rave is not None and rave.is_file():
            result["torchscript_levers_rave_export"] = torchscript_levers(
                rave, big_frames, big_trials
            )
        else:
            result["torchscript_levers_rave_export"] = (
                "skipped: no RAVE export (make one with tools/make_rave_export.sh, pass --rave)"
            )
    result["root"] = str(ROOT)
    emit("backends", result)


if __name__ == "__main__":
    main()

"""Soak: the live engine on a JACK server for N seconds under load, in this process.

Load: OSC messages at a fixed rate from another process, and a GIL-busy Python thread in the
engine's own process (the worst neighbour the decode worker can have). Prints one JSON line.
Run by bench_engine.py with JACK_DEFAULT_SERVER set (PortAudio reads it at import).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path


def busy(stop: threading.Event, counter: list[int]) -> None:
    n = 0
    while not stop.is_set():
        for i in range(1000):
            n += i * i % 7
        counter[0] += 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--blocksize", type=int, default=256)
    ap.add_argument("--prebuffer", type=int, default=1024)
    ap.add_argument("--no-neighbour", action="store_true")
    args = ap.parse_args()

    import sounddevice as sd
    import torch

    torch.set_num_threads(1)
    from instrument.audio import RingOutput, find_device
    from instrument.live import LiveConfig, LiveEngine, make_context
    from instrument.patch import load_patch
    from instrument.runtime import ModelRuntime

    runtime = ModelRuntime(args.model)
    patch = load_patch("default", context=make_context(runtime))
    device = find_device("system JACK")
    info = runtime.info
    out = RingOutput(samplerate=info.samplerate, channels=2, blocksize=args.blocksize,
                     capacity=args.prebuffer + 8 * info.ratio + 256, device=device)
    cfg = LiveConfig(samplerate=info.samplerate, blocksize=args.blocksize, prebuffer=args.prebuffer,
                     osc_port=0)
    engine = LiveEngine(runtime, patch, out, cfg)
    engine.start()
    port = engine.inputs[0].port
    stop = threading.Event()
    counter = [0]
    neighbour = None
    if not args.no_neighbour:
        neighbour = threading.Thread(target=busy, args=(stop, counter), daemon=True)
        neighbour.start()
    sender = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.osc_load", str(port), str(args.rate), str(args.seconds),
         str(info.latent_size)],
        cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, text=True,
    )
    sent_out, _ = sender.communicate(timeout=args.seconds + 30)
    stop.set()
    time.sleep(0.2)
    stats = engine.stop()
    m = engine.metrics
    p50, p99 = m.decode_ms()
    med, jit = m.latency_ms()
    lat = m.latency_s.values() * 1e3
    print(json.dumps({
        "seconds": args.seconds,
        "blocksize": args.blocksize,
        "prebuffer": args.prebuffer,
        "osc_rate_hz": args.rate,
        "osc_sent": int(sent_out.strip() or 0),
        "osc_accepted": engine.inputs[0].accepted,
        "gil_neighbour": neighbour is not None,
        "neighbour_loops": counter[0],
        "frames": m.frames,
        "underruns": m.underruns,
        "device_underflows": out.device_underflows,
        "device_stats": stats,
        "decode_ms_p50": p50,
        "decode_ms_p99": p99,
        "latency_ms_median": med,
        "latency_ms_jitter_std": jit,
        "latency_ms_p5_p95": [float(x) for x in ([__import__("numpy").percentile(lat, 5), __import__("numpy").percentile(lat, 95)] if lat.size else [])],
        "latency_budget_ms": engine.latency_terms_ms(),
        "model": info.name, "ratio": info.ratio, "samplerate": info.samplerate,
        "portaudio": sd.get_portaudio_version()[1],
    }), flush=True)


if __name__ == "__main__":
    main()

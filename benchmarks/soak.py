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

import numpy as np


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
    ap.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx"))
    ap.add_argument("--rt-priority", default="auto", help="auto, off or N (decode worker)")
    ap.add_argument("--threads", type=int, default=1, help="decode threads (0: auto)")
    ap.add_argument(
        "--input", default="", help="DEVICE:CHANNELS: duplex, the model listens (patch listen)"
    )
    ap.add_argument(
        "--in-process", action="store_true", help="decode worker on a thread of this process"
    )
    args = ap.parse_args()

    import sounddevice as sd

    from instrument.control.live import LiveConfig, LiveEngine, OutputSpec, WorkerSpec

    in_device, _, in_channels = args.input.rpartition(":")
    spec = WorkerSpec(
        model=args.model,
        patch="listen" if args.input else "default",
        prebuffer=args.prebuffer,
        backend=args.backend,
        rt_priority=args.rt_priority,
        threads=args.threads,
        output=OutputSpec(
            kind="device",
            device="system JACK",
            blocksize=args.blocksize,
            capacity=args.prebuffer + 8192 + 256,
            input_device=in_device or None,
            input_channels=int(in_channels) if args.input else 0,
        ),
    )
    cfg = LiveConfig(samplerate=0, blocksize=args.blocksize, prebuffer=args.prebuffer, osc_port=0)
    engine = LiveEngine(spec, cfg, in_process=args.in_process)
    engine.start()
    port = engine.inputs[0].port
    stop = threading.Event()
    counter = [0]
    neighbour = None
    if not args.no_neighbour:
        neighbour = threading.Thread(target=busy, args=(stop, counter), daemon=True)
        neighbour.start()
    sender = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.osc_load",
            str(port),
            str(args.rate),
            str(args.seconds),
            str(engine.model.latent_size),
        ],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    sent_out, _ = sender.communicate(timeout=args.seconds + 30)
    stop.set()
    time.sleep(0.2)
    engine_accepted = engine.inputs[0].accepted
    stats = engine.stop()
    m = engine.metrics
    p50, p99 = engine.decode_ms()
    med, jit = engine.latency_ms()
    lat = np.asarray(engine.snap.latency_values_ms or [])
    print(
        json.dumps(
            {
                "mode": "in-process thread" if args.in_process else "decode process",
                "duplex_input": engine.snap.input_note if engine.snap else "",
                "input_overruns": engine.snap.input_overruns if engine.snap else 0,
                "seconds": args.seconds,
                "blocksize": args.blocksize,
                "prebuffer": args.prebuffer,
                "osc_rate_hz": args.rate,
                "osc_sent": int(sent_out.strip() or 0),
                "osc_accepted": engine_accepted,
                "gil_neighbour": neighbour is not None,
                "neighbour_loops": counter[0],
                "frames": m.frames,
                "underruns": m.underruns,
                "device_underflows": m.device_underflows,
                "device_stats": stats,
                "decode_ms_p50": p50,
                "decode_ms_p99": p99,
                "latency_ms_median": med,
                "latency_ms_jitter_std": jit,
                "latency_ms_p5_p95": [float(np.percentile(lat, 5)), float(np.percentile(lat, 95))]
                if lat.size
                else [],
                "latency_budget_ms": engine.latency_terms_ms(),
                "model": engine.model.name,
                "backend": engine.model.backend,
                "backend_note": engine.model.backend_note,
                "threads": engine.model.threads,
                "worker_priority": engine.snap.priority,
                "ratio": engine.model.ratio,
                "samplerate": engine.samplerate,
                "portaudio": sd.get_portaudio_version()[1],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()

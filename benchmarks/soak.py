"""Soak: the live engine on a JACK server for N seconds under load, in this process.

Load: OSC messages at a fixed rate from another process, and a GIL-busy Python thread in the
engine's own process (the worst neighbour the decode worker can have). ``--rate 0
--no-neighbour`` is the quiet case: nobody plays, and control → sound is measured by the
engine's own latency probe (``instrument.link.messages.Probe``, about 10/s).

Settings as ``run_instrument.py``: ``--latency``, ``--prebuffer auto|N``, ``--blocksize``,
``--backend``, ``--rt-priority``, ``--threads`` and ``--input`` go through the CLI's own parser
and are resolved by its own code (``instrument.cli.block_and_prebuffer`` and ``worker_spec``), so the
soak plays what the CLI would play; an option not given is the CLI's default. The JACK server's
period should equal the resolved block (:func:`settings` tells it; bench_engine.py does so).

Prints one JSON line (the last line of stdout; the engine's own ``Sillage: prebuffer ...``
lines come before it). Run by bench_engine.py with JACK_DEFAULT_SERVER set (PortAudio reads it
at import).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# soak option → CLI option; each passed through to the CLI's parser when given
CLI_OPTIONS = ("latency", "prebuffer", "blocksize", "backend", "rt_priority", "threads", "input")
WINDOW_S = 2.0  # the engine's latency window holds the last 512 measurements: sample it this often
JACK_DEVICE = "system JACK"


def busy(stop: threading.Event, counter: list[int]) -> None:
    n = 0
    while not stop.is_set():
        for i in range(1000):
            n += i * i % 7
        counter[0] += 1


def add_cli_options(ap: argparse.ArgumentParser) -> None:
    """The options passed through to the CLI (strings; the CLI's parser checks them)."""
    ap.add_argument("--latency", default=None, help="low|normal|safe (default: the CLI's)")
    ap.add_argument("--prebuffer", default=None, help="auto|N (default: the CLI's)")
    ap.add_argument("--blocksize", default=None, help="frames (default: the --latency mode's)")
    ap.add_argument("--backend", default=None, help="auto|torch|onnx (default: the CLI's)")
    ap.add_argument("--rt-priority", default=None, help="auto|off|N (default: the CLI's)")
    ap.add_argument("--threads", default=None, help="N|auto (default: the CLI's)")
    ap.add_argument(
        "--input", default=None, help="DEVICE[:CHANNELS]: duplex, the model listens (patch listen)"
    )


def cli_namespace(model: str | None, options: argparse.Namespace) -> argparse.Namespace:
    """The CLI's own parse of the soak's settings (``--device`` the JACK server)."""
    from instrument.cli import build_parser

    argv = ["--device", JACK_DEVICE, "--osc-port", "0", "--no-ui"]
    if model:
        argv += ["--model", model]
    for name in CLI_OPTIONS:
        value = getattr(options, name, None)
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    if getattr(options, "input", None):
        argv += ["--patch", "listen"]
    return build_parser().parse_args(argv)


def settings(flags: Sequence[str]) -> tuple[int, int, int]:
    """(block, prebuffer start, ceiling; 0: fixed) that soak.py will play with ``flags``, as
    the CLI resolves them: the JACK period to start the server with is the block."""
    from instrument.cli import block_and_prebuffer

    ap = argparse.ArgumentParser(add_help=False)
    add_cli_options(ap)
    known, _ = ap.parse_known_args(list(flags))
    return block_and_prebuffer(cli_namespace(None, known))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rate", type=float, default=500, help="OSC msg/s (0: nobody plays)")
    ap.add_argument("--no-neighbour", action="store_true")
    ap.add_argument(
        "--in-process", action="store_true", help="decode worker on a thread of this process"
    )
    add_cli_options(ap)
    args = ap.parse_args()

    import sounddevice as sd

    from instrument.cli import block_and_prebuffer, worker_spec
    from instrument.control.live import LiveConfig, LiveEngine

    cli = cli_namespace(args.model, args)
    blocksize, prebuffer, ceiling = block_and_prebuffer(cli)
    spec = worker_spec(cli, "device")
    # no state sent anywhere (the CLI's default is 127.0.0.1:7771), any free OSC port
    cfg = LiveConfig(samplerate=0, blocksize=blocksize, prebuffer=prebuffer, osc_port=0)
    engine = LiveEngine(spec, cfg, in_process=args.in_process)
    engine.start()
    first = engine.snap
    port = engine.inputs[0].port
    stop = threading.Event()
    counter = [0]
    neighbour = None
    if not args.no_neighbour:
        neighbour = threading.Thread(target=busy, args=(stop, counter), daemon=True)
        neighbour.start()
    sender = None
    if args.rate > 0:
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
    # Every prebuffer change (the snapshot carries the last note and a count) and the latency
    # window's median/sd every WINDOW_S: the final snapshot's window is only the last 512.
    t0 = time.monotonic()
    changes: list[dict[str, Any]] = []
    seen = 0
    windows: list[tuple[float, float]] = []
    next_window = t0 + WINDOW_S
    while True:
        now = time.monotonic()
        if sender is None and now - t0 >= args.seconds:
            break
        if sender is not None and sender.poll() is not None:
            break
        if now - t0 > args.seconds + 30:
            assert sender is not None
            sender.kill()
            break
        time.sleep(0.05)
        snap = engine.snap
        if snap is None:
            continue
        if first is None:
            first = snap  # the first state after start: the prebuffer the worker starts at
        if snap.prebuffer_changes > seen:
            changes.append(
                {
                    "t_s": round(now - t0, 2),
                    "count": snap.prebuffer_changes,  # a jump of more than 1: changes missed
                    "prebuffer": snap.prebuffer,
                    "note": snap.prebuffer_note,
                }
            )
            seen = snap.prebuffer_changes
        if now >= next_window:
            next_window += WINDOW_S
            if all(math.isfinite(v) for v in snap.latency_ms):
                windows.append(snap.latency_ms)
    sent_out = sender.communicate(timeout=30)[0] if sender is not None else ""
    stop.set()
    time.sleep(0.2)
    last = engine.snap  # before stop: what stopping itself adds is not the soak's
    engine_accepted = engine.inputs[0].accepted
    stats = engine.stop()
    m = engine.metrics
    p50, p99 = engine.decode_ms()
    med, jit = engine.latency_ms()
    snap = engine.snap
    lat = np.asarray(snap.latency_values_ms or []) if snap else np.asarray([])
    medians = [w[0] for w in windows]
    print(
        json.dumps(
            {
                "mode": "in-process thread" if args.in_process else "decode process",
                "latency_mode": cli.latency,
                "prebuffer_setting": str(cli.prebuffer),
                "duplex_input": snap.input_note if snap else "",
                "input_overruns": snap.input_overruns if snap else 0,
                "seconds": args.seconds,
                "blocksize": blocksize,
                "prebuffer": prebuffer,
                "prebuffer_start": prebuffer,
                "prebuffer_ceiling": ceiling,
                "prebuffer_at_start": first.prebuffer if first else None,
                "prebuffer_note_at_start": first.prebuffer_note if first else "",
                "prebuffer_final": snap.prebuffer if snap else None,
                "prebuffer_changes": snap.prebuffer_changes if snap else None,
                "prebuffer_note_final": snap.prebuffer_note if snap else "",
                "prebuffer_change_log": changes,
                "osc_rate_hz": args.rate,
                "osc_sent": int(sent_out.strip() or 0),
                "osc_accepted": engine_accepted,
                "gil_neighbour": neighbour is not None,
                "neighbour_loops": counter[0],
                "frames": m.frames,
                "underruns": m.underruns,
                "underruns_before_stop": last.underruns if last else None,
                "prebuffer_changes_before_stop": last.prebuffer_changes if last else None,
                "device_underflows": m.device_underflows,
                "device_stats": stats,
                # the decode process's garbage collector (frozen after start-up)
                "gc_full_collections": snap.gc_full if snap else None,
                "gc_max_pause_ms": snap.gc_max_ms if snap else None,
                "decode_ms_p50": p50,
                "decode_ms_p99": p99,
                # the whole run: every event and probe (the engine's histogram, final snapshot)
                "latency_ms_median": snap.latency_run_ms[0] if snap else med,
                "latency_ms_jitter_std": snap.latency_run_ms[1] if snap else jit,
                "latency_measurements": snap.latency_run_count if snap else 0,
                # the engine's window: the last 512 measurements (about 3 s under the OSC load)
                "latency_ms_median_last_window": med,
                "latency_ms_jitter_std_last_window": jit,
                "latency_ms_p5_p95": [float(np.percentile(lat, 5)), float(np.percentile(lat, 95))]
                if lat.size
                else [],
                "latency_measurements_final_window": int(lat.size),
                # the window sampled every WINDOW_S through the run
                "latency_windows": {
                    "every_s": WINDOW_S,
                    "count": len(windows),
                    "median_of_medians_ms": statistics.median(medians) if medians else None,
                    "max_median_ms": max(medians) if medians else None,
                    "max_sd_ms": max(w[1] for w in windows) if windows else None,
                },
                # term by term; the prebuffer term is the final prebuffer
                "latency_budget_ms": engine.latency_terms_ms(),
                "model": engine.model.name,
                "backend": engine.model.backend,
                "backend_note": engine.model.backend_note,
                "threads": engine.model.threads,
                "worker_priority": snap.priority if snap else None,
                "ratio": engine.model.ratio,
                "samplerate": engine.samplerate,
                "portaudio": sd.get_portaudio_version()[1],
                "cli_settings": {
                    k: v
                    for k, v in dataclasses.asdict(spec).items()
                    if k in ("prebuffer", "prebuffer_ceiling", "threads", "backend", "rt_priority")
                },
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()

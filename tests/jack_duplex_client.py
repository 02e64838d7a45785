"""A JACK client that plays a known signal into Sillage's capture ports and records its output.

Run by tests/test_listen_jack.py and benchmarks/bench_listen.py, in its own process
(a Python JACK callback needs the GIL every period). Two clients in one: jack_iodelay needs a
loop, which Sillage is not, so this one plays and records in the same process callback and
both signals share one frame counter.

Usage: ``jack_duplex_client.py SERVER SECONDS OUT.npz [PREFIX]``. The signal, from the moment
both ports are connected: 1 s of silence, bursts of a 220 Hz tone (0.15 s every 0.5 s, for
the latency), then 220 Hz for 1.5 s and 440 Hz for 1.5 s. Writes ``played``, ``heard``
(float32, same length, sample-aligned), ``samplerate``, ``bursts`` (burst start samples),
``tones`` ((start, stop, f0) rows) and ``xruns`` (count).
"""

from __future__ import annotations

import sys
import threading
import time

import jack
import numpy as np


def signal(
    sr: int, n_bursts: int = 8
) -> tuple[np.ndarray, list[int], list[tuple[int, int, float]]]:
    parts: list[np.ndarray] = [np.zeros(sr)]
    bursts = []
    pos = sr
    t = np.arange(int(0.15 * sr)) / sr
    burst = 0.3 * np.sin(2 * np.pi * 220 * t)
    for _ in range(n_bursts):
        bursts.append(pos)
        gap = np.zeros(int(0.5 * sr) - burst.size)
        parts += [burst, gap]
        pos += burst.size + gap.size
    tones = []
    for f0 in (220.0, 440.0):
        n = int(1.5 * sr)
        tt = np.arange(n) / sr
        parts.append(0.3 * np.sin(2 * np.pi * f0 * tt))
        tones.append((pos, pos + n, f0))
        pos += n
    parts.append(np.zeros(sr // 2))
    return np.concatenate(parts).astype(np.float32), bursts, tones


def burst_latencies_ms(
    heard: np.ndarray, bursts: np.ndarray, sr: int, *, window_s: float = 0.4
) -> np.ndarray:
    """Per burst: ms from the burst's first sample to the first heard sample above a fifth of
    that window's peak (NaN when the window is silent)."""
    out = []
    w = int(window_s * sr)
    for b in bursts:
        seg = np.abs(heard[b : b + w])
        peak = float(seg.max()) if seg.size else 0.0
        if peak < 1e-3:
            out.append(np.nan)
            continue
        out.append(1e3 * int(np.argmax(seg > 0.2 * peak)) / sr)
    return np.array(out)


def main() -> None:
    server, seconds, out_path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    prefix = sys.argv[4] if len(sys.argv) > 4 else "PortAudio:"
    client = jack.Client("sillage-duplex", servername=server, no_start_server=True)
    sr = client.samplerate
    out_port = client.outports.register("out")
    in_port = client.inports.register("in")
    played, bursts, tones = signal(sr)
    heard = np.zeros_like(played)
    state = {"pos": -1, "xruns": 0}
    done = threading.Event()

    @client.set_process_callback
    def process(frames: int) -> None:
        pos = state["pos"]
        out = out_port.get_array()
        if pos < 0 or pos >= played.size:
            out[:] = 0.0
            if pos >= played.size:
                done.set()
            return
        n = min(frames, played.size - pos)
        out[:n] = played[pos : pos + n]
        out[n:] = 0.0
        heard[pos : pos + n] = in_port.get_array()[:n]
        state["pos"] = pos + n

    def xrun(delay: float) -> None:
        state["xruns"] += 1

    client.set_xrun_callback(xrun)
    client.activate()
    deadline = time.monotonic() + seconds
    ins: list[jack.Port] = []
    outs: list[jack.Port] = []
    while (not ins or not outs) and time.monotonic() < deadline:
        ins = [
            p for p in client.get_ports(is_audio=True, is_input=True) if p.name.startswith(prefix)
        ]
        outs = [
            p for p in client.get_ports(is_audio=True, is_output=True) if p.name.startswith(prefix)
        ]
        time.sleep(0.05)
    if ins and outs:
        client.connect(out_port, ins[0])
        client.connect(outs[0], in_port)
        time.sleep(0.3)  # let the graph settle before the signal starts
        state["pos"] = 0
        done.wait(max(0.0, deadline - time.monotonic()))
    client.deactivate()
    client.close()
    np.savez(
        out_path,
        played=played,
        heard=heard,
        samplerate=sr,
        bursts=np.array(bursts),
        tones=np.array(tones),
        xruns=state["xruns"],
        connected=bool(ins and outs),
        finished=bool(state["pos"] >= played.size),
    )


if __name__ == "__main__":
    main()

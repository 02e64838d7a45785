"""A JACK client in its own process that listens to the engine's output.

Run by tests/test_live_jack.py. Its own process, because a JACK process callback written in
Python needs the GIL every period: inside pytest's process it caused xruns of its own.
Prints one JSON line at the end: RMS heard, samples, JACK xruns seen, the connect time, and
the RMS per 10 ms window with its wall time ("levels": when it went silent, when it came back).
"""

from __future__ import annotations

import json
import sys
import threading
import time

import jack
import numpy as np


def main() -> None:
    server, prefix, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    client = jack.Client("sillage-listener", servername=server, no_start_server=True)
    inport = client.inports.register("in")
    energy = np.zeros(2)
    xruns: list[float] = []
    blocks: list[tuple[float, float]] = []  # (wall time, energy) per period, for "levels"

    @client.set_process_callback
    def process(frames: int) -> None:
        x = inport.get_array()
        e = float(np.dot(x, x))
        energy[0] += e
        energy[1] += frames
        blocks.append((time.time(), e / max(frames, 1)))

    client.set_xrun_callback(lambda delay: xruns.append(round(time.time(), 2)))
    client.activate()
    deadline = time.monotonic() + 30
    ports: list[jack.Port] = []
    while not ports and time.monotonic() < deadline:
        ports = [
            p for p in client.get_ports(is_audio=True, is_output=True) if p.name.startswith(prefix)
        ]
        if not ports:
            time.sleep(0.05)
    connected_at = None
    if ports:
        client.connect(ports[0], inport)
        connected_at = round(time.time(), 2)
        # stay until the engine's port goes away (disconnecting earlier would be a graph change
        # while the engine still plays)
        end = time.monotonic() + seconds
        while time.monotonic() < end and any(
            p.name == ports[0].name for p in client.get_ports(is_audio=True, is_output=True)
        ):
            threading.Event().wait(0.1)
    client.deactivate()
    client.close()
    print(
        json.dumps(
            {
                "rms": float(np.sqrt(energy[0] / max(energy[1], 1))),
                "samples": int(energy[1]),
                "xruns": xruns,
                "connected_at": connected_at,
                "levels": _levels(blocks),
            }
        ),
        flush=True,
    )


def _levels(blocks: list[tuple[float, float]], window_s: float = 0.01) -> list[list[float]]:
    """``[wall time, RMS]`` per ``window_s`` of what was heard (when it went silent, when the
    sound came back)."""
    out: list[list[float]] = []
    if not blocks:
        return out
    t0 = blocks[0][0]
    bucket: list[float] = []
    start = t0
    for t, e in blocks:
        if t - start >= window_s and bucket:
            out.append([round(start, 3), round(float(np.sqrt(np.mean(bucket))), 5)])
            bucket, start = [], t
        bucket.append(e)
    return out


if __name__ == "__main__":
    main()

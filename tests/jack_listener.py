"""A JACK client in its own process that listens to the engine's output.

Run by tests/test_live_jack.py. Its own process, because a JACK process callback written in
Python needs the GIL every period: inside pytest's process it caused xruns of its own.
Prints one JSON line at the end: RMS heard, samples, JACK xruns seen, and the connect time.
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

    @client.set_process_callback
    def process(frames: int) -> None:
        x = inport.get_array()
        energy[0] += float(np.dot(x, x))
        energy[1] += frames

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
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()

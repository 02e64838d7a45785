"""Valid control under a hostile OSC flood: how much still takes effect, how late, at what cost.

The live engine runs headless and clock-paced (``--offline OUT --realtime``). A junk sender
(its own process) floods its OSC port with a mix of what a hostile or broken network sends:
garbage, unknown addresses, a thousand odd type tags, truncated numbers, bundles timetagged
years ahead, a malformed ``/sillage/panic``, oversized packets. Meanwhile this process sends a
distinct ``/sillage/latent/0`` value every 100 ms from another socket and watches
``/sillage/state/latent`` for it (smoothing 0). Measured, quiet then under the flood:
the share of values seen, the lag from send to the first state message that shows it (this
includes up to one 33 ms state period), the engine's underruns and the CPU time of both
processes.

``python -m benchmarks hostile_osc`` (or ``python -m benchmarks.bench_hostile_osc
[--engine-root OTHER_CHECKOUT] [--rate 5000] [--seconds 10]``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_server import BlockingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from benchmarks.common import bench_model, emit
from instrument.paths import ROOT

READY = re.compile(r"Sillage ready: OSC on [\d.]+:(\d+)")


def ready_port(engine: subprocess.Popen[str]) -> tuple[int, list[str], threading.Thread]:
    """Read the engine's output up to its ready line: its OSC port, every line it prints (the
    rest are appended by the returned reader thread: join it once the engine has ended)."""
    assert engine.stdout is not None
    lines: list[str] = []
    for line in engine.stdout:
        lines.append(line)
        m = READY.match(line)
        if m:
            reader = threading.Thread(target=lambda: lines.extend(engine.stdout or []), daemon=True)
            reader.start()
            return int(m.group(1)), lines, reader
    raise SystemExit("the engine did not start:\n" + "".join(lines))


def junk_packets() -> list[bytes]:
    def msg(address: str, *args: Any) -> bytes:
        b = OscMessageBuilder(address=address)
        for a in args:
            b.add_arg(a)
        return b.build().dgram

    far = struct.pack(">Q", int((time.time() + 3 * 365 * 86400 + 2208988800) * 2**32))
    panic = msg("/sillage/panic")
    return [
        b"garbage" * 3,
        msg("/nowhere/at/all", 1.0),
        msg("/sillage/nope", 1.0),
        b"/sillage/latent/0\x00\x00\x00," + b"q" * 1000 + b"\x00" * 3,  # odd type tags
        msg("/sillage/latent/0", 1.0)[:-2],  # a truncated float
        b"#bundle\x00" + far + struct.pack(">i", len(panic)) + panic,  # years ahead
        b"/sillage/panic\x00\x00,xyz\x00\x00\x00\x00",  # a malformed panic
        msg("/sillage/latent", *([0.5] * 2000)),  # 8 kB and more
    ]


def junk_main(port: int, rate: float, seconds: float, sockets: int = 1) -> None:
    """The junk sender (its own process): ``rate`` packets/s for ``seconds``, spread over
    ``sockets`` source ports (many ports: the per-sender rate limit does not help)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(sockets)]
    packets = junk_packets()
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        due = start + n / rate
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        with contextlib.suppress(OSError):  # a full socket buffer: the kernel drops it
            socks[n % sockets].sendto(packets[n % len(packets)], ("127.0.0.1", port))
        n += 1
    print(n, flush=True)


class Watcher:
    """Receives state; records when each latent[0] value was first seen."""

    def __init__(self) -> None:
        self.seen: dict[float, float] = {}
        d = Dispatcher()
        d.map("/sillage/state/latent", self._latent)
        self.server = BlockingOSCUDPServer(("127.0.0.1", 0), d)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()  # fmt: skip

    def _latent(self, address: str, *args: float) -> None:
        key = round(args[0], 3)
        self.seen.setdefault(key, time.perf_counter())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Child processes of every thread of ``pid`` (a restarted decode process is the child
    of the thread that restarted it, not of the main thread)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):  # a thread that just ended
            out += [int(p) for p in (task / "children").read_text().split()]
    return out


def phase(client: SimpleUDPClient, watcher: Watcher, seconds: float, base: float) -> dict:
    sent: dict[float, float] = {}
    k = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        value = round(base + 0.01 * k, 3)
        sent[value] = time.perf_counter()
        client.send_message("/sillage/latent/0", value)
        k += 1
        time.sleep(0.1)
    time.sleep(0.3)  # the last value's state
    lags = np.array([watcher.seen[v] - t for v, t in sent.items() if v in watcher.seen])
    return {
        "sent": len(sent),
        "applied_fraction": round(len(lags) / max(len(sent), 1), 4),
        "lag_ms_median": round(float(np.median(lags)) * 1e3, 1) if lags.size else None,
        "lag_ms_p95": round(float(np.percentile(lags, 95)) * 1e3, 1) if lags.size else None,
        "lag_ms_max": round(float(lags.max()) * 1e3, 1) if lags.size else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine-root", default=str(ROOT), help="checkout whose engine runs")
    ap.add_argument("--rate", type=float, default=5000.0, help="junk packets per second")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    ap.add_argument(
        "--senders", type=int, default=1, help="source ports the junk comes from (default 1)"
    )
    ap.add_argument(
        "--junk", nargs=4, metavar=("PORT", "RATE", "SECONDS", "N"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.junk:
        junk_main(int(args.junk[0]), float(args.junk[1]), float(args.junk[2]), int(args.junk[3]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        model = bench_model(Path(tmp))
        out = Path(tmp) / "played.wav"
        engine = subprocess.Popen(
            [sys.executable, "-u", "run_instrument.py", "--offline", str(out), "--realtime",
             "--seconds", str(4 * args.seconds + 30), "--model", str(model), "--osc-port", "0",
             "--no-ui", "--prebuffer", "1024", "--record-dir", tmp],
            cwd=args.engine_root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        port, lines, reader = ready_port(engine)
        watcher = Watcher()
        client = SimpleUDPClient("127.0.0.1", port)
        client.send_message("/sillage/subscribe", watcher.port)
        client.send_message("/sillage/smoothing_ms", 0.0)
        time.sleep(1.0)
        procs = [engine.pid, *children(engine.pid)]
        quiet = phase(client, watcher, args.seconds, base=-3.0)
        cpu0 = [cpu_s(p) for p in procs]
        junk = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_hostile_osc", "--junk", str(port),
             str(args.rate), str(args.seconds + 1), str(args.senders)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(0.5)
        hostile = phase(client, watcher, args.seconds, base=3.0)
        cpu1 = [cpu_s(p) for p in procs]
        junk_sent = int((junk.communicate(timeout=60)[0] or "0").split()[-1])
        watcher.close()
        engine.send_signal(signal.SIGTERM)
        engine.wait(timeout=60)
        reader.join(timeout=5)
    summary = next((x for x in lines if x.startswith("Sillage stopped")), "")
    m = re.search(r"underruns (\d+)", summary)
    text = "".join(lines)
    emit(
        "hostile_osc" if args.senders == 1 else f"hostile_osc_{args.senders}_senders",
        {
            "engine_root": args.engine_root,
            "junk_rate_per_s": args.rate,
            "junk_senders": args.senders,
            "junk_sent": junk_sent,
            "phase_seconds": args.seconds,
            "quiet": quiet,
            "hostile": hostile,
            "underruns_total": int(m.group(1)) if m else None,
            "cpu_s_during_flood": {
                "control_process": round(cpu1[0] - cpu0[0], 2),
                "decode_process": round(sum(cpu1[1:]) - sum(cpu0[1:]), 2),
            },
            "engine_output_lines": len(lines),
            "unhandled_parameter_type_lines": text.count("Unhandled parameter type"),
            "summary": summary.strip(),
        },
    )


if __name__ == "__main__":
    main()

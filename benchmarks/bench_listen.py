"""The instrument listening, measured on a JACK dummy server (48 kHz, block 256).

(a) input → output latency: a separate JACK client (tests/jack_duplex_client.py) plays tone
    bursts into Sillage's capture ports and records its output in the same callback; the
    latency of each burst is the time to the first output sample above a fifth of the burst's
    peak. Median and sd, beside the budget line Sillage prints. (jack_iodelay needs a loop,
    hence two clients in one.) Includes one JACK period for the client's own graph edge.
(b) underruns at the default prebuffer with duplex on, under the soak benchmark's load
    (500 OSC msg/s and a GIL-busy neighbour).

    python -m benchmarks.bench_listen [--model M.ts] [--seconds 30] [--prebuffer 1024]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.bench_engine import soak
from benchmarks.common import ROOT, bench_model, emit

JACK = "system JACK Audio"


def latency(model: Path, prebuffer: int, tmp: Path) -> dict:
    from tests.jack_duplex_client import burst_latencies_ms
    from tests.jackserver import jack_server

    out = tmp / "duplex.npz"
    with jack_server(samplerate=48000, period=256) as server:
        env = dict(os.environ, JACK_DEFAULT_SERVER=server, PYTHONUNBUFFERED="1")
        engine = subprocess.Popen(
            [sys.executable, "run_instrument.py", "--model", str(model), "--device", JACK,
             "--input", f"{JACK}:1", "--patch", "listen", "--seconds", "16", "--no-ui",
             "--osc-port", "0", "--blocksize", "256", "--prebuffer", str(prebuffer)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert engine.stdout is not None
        head = []
        for line in engine.stdout:
            head.append(line)
            if line.startswith("Sillage ready"):
                break
        subprocess.run(
            [sys.executable, str(ROOT / "tests" / "jack_duplex_client.py"), server, "40", str(out)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        rest, _ = engine.communicate(timeout=90)
    log = "".join(head) + rest
    data = np.load(out)
    lat = burst_latencies_ms(data["heard"], data["bursts"], int(data["samplerate"]))
    budget = next((x for x in log.splitlines() if "input → sound" in x), "")
    stopped = next((x for x in log.splitlines() if x.startswith("Sillage stopped")), "")
    return {
        "prebuffer": prebuffer,
        "latency_ms_median": float(np.nanmedian(lat)) if np.isfinite(lat).any() else math.nan,
        "latency_ms_sd": float(np.nanstd(lat)) if np.isfinite(lat).any() else math.nan,
        "latency_ms_each": [round(float(v), 2) for v in lat],
        "jack_period_ms": 1e3 * 256 / 48000,
        "budget_line": budget.strip(),
        "stopped_line": stopped.strip(),
        "client_xruns": int(data["xruns"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--prebuffer", type=int, default=1024)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else bench_model(Path(tmp))
        result = {
            "model": str(model),
            "latency": latency(model, args.prebuffer, Path(tmp)),
            "soak_duplex": soak(
                model,
                args.seconds,
                *("--rate", "500", "--blocksize", "256", "--prebuffer", str(args.prebuffer)),
                *("--input", f"{JACK}:1"),
            ),
        }
    emit("listen", result)


if __name__ == "__main__":
    main()

"""Fault soak: the live engine plays for minutes while a fault is injected every period.

Faults, in turn, on the test fixture model (``tests.modelfixtures.FaultModel``, latent dim 3):
NaN out of the model, NaN into its streaming state, ``decode`` raising once, the model broken
until reset, and ``kill -9`` of the decode process. Each fault is held 0.1 s, then taken back.
For each one: was it reported (``/sillage/state/error``) and did the sound come back
(``/sillage/state/level`` above -40 dBFS again), and how long after the fault was taken back.
A *silent failure* is a fault without a report, or without sound afterwards.

``python -m benchmarks.bench_fault_soak [--minutes 10] [--period 30]`` (JSON out).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from benchmarks.bench_hostile_osc import children, ready_port
from benchmarks.common import emit
from instrument.paths import ROOT

FAULTS = ("nan_out", "nan_state", "raise_once", "broken", "kill_9")
POISON = {"nan_out": 1.0, "nan_state": 2.0, "raise_once": -1.0, "broken": -2.0}
REPORT = {"kill_9": "DIED"}


class State:
    """State from the engine, with wall times."""

    def __init__(self) -> None:
        self.errors: list[tuple[float, str]] = []
        self.levels: list[tuple[float, float]] = []
        self.cond = threading.Condition()
        d = Dispatcher()
        d.map("/sillage/state/error", lambda a, *args: self._add(self.errors, str(args[0])))
        d.map("/sillage/state/level", lambda a, *args: self._add(self.levels, float(args[0])))
        self.server = BlockingOSCUDPServer(("127.0.0.1", 0), d)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _add(self, where: list[Any], value: Any) -> None:
        with self.cond:
            where.append((time.time(), value))
            self.cond.notify_all()

    def first(self, where: list[Any], since: float, pred: Any, timeout: float) -> float | None:
        with self.cond:
            found: list[float] = []

            def check() -> bool:
                found[:] = [t for t, v in where if t >= since and pred(v)][:1]
                return bool(found)

            self.cond.wait_for(check, timeout)
            return found[0] if found else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--period", type=float, default=30.0, help="seconds between faults")
    args = ap.parse_args()
    from tests.modelfixtures import fault_model

    with tempfile.TemporaryDirectory() as tmp:
        model = fault_model(Path(tmp) / "fault.ts")
        engine = subprocess.Popen(
            [sys.executable, "-u", "run_instrument.py", "--offline", str(Path(tmp) / "o.wav"),
             "--realtime", "--seconds", str(args.minutes * 60 + 60), "--model", str(model),
             "--osc-port", "0", "--no-ui", "--prebuffer", "1024"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        port, lines, _ = ready_port(engine)
        state = State()
        client = SimpleUDPClient("127.0.0.1", port)
        client.send_message("/sillage/subscribe", state.port)
        client.send_message("/sillage/smoothing_ms", 0.0)
        results = []
        start = time.time()
        k = 0
        while time.time() - start < args.minutes * 60:
            due = start + (k + 1) * args.period
            while time.time() < due:
                time.sleep(min(1.0, due - time.time()))
                client.send_message("/sillage/subscribe", state.port)  # after a restart too
            fault = FAULTS[k % len(FAULTS)]
            t0 = time.time()
            if fault == "kill_9":
                for pid in children(engine.pid):
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if b"multiprocessing" in cmd and b"resource_tracker" not in cmd:
                        os.kill(pid, signal.SIGKILL)
            else:
                client.send_message("/sillage/latent/3", POISON[fault])
            time.sleep(0.1)
            if fault != "kill_9":
                client.send_message("/sillage/latent/3", 0.0)
            t_fix = time.time()
            word = REPORT.get(fault, "bad frame")
            reported = state.first(state.errors, t0, lambda text, w=word: w in text, 10.0)
            back = state.first(state.levels, t_fix + 0.05, lambda db: db > -40, 30.0)
            results.append({
                "fault": fault,
                "at_s": round(t0 - start, 1),
                "reported_after_s": None if reported is None else round(reported - t0, 3),
                "sound_back_after_fix_s": None if back is None else round(back - t_fix, 3),
            })  # fmt: skip
            print(results[-1], file=sys.stderr, flush=True)
            k += 1
        engine.send_signal(signal.SIGTERM)
        engine.wait(timeout=60)
        state.server.shutdown()
        state.server.server_close()
    silent = [
        r for r in results if r["reported_after_s"] is None or r["sound_back_after_fix_s"] is None
    ]
    summary = next((x for x in lines if x.startswith("Sillage stopped")), "").strip()
    emit(
        "fault_soak",
        {
            "minutes": args.minutes,
            "period_s": args.period,
            "faults": len(results),
            "silent_failures": len(silent),
            "results": results,
            "engine_rc": engine.returncode,
            "summary": summary,
        },
    )


if __name__ == "__main__":
    main()

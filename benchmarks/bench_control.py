"""Control benchmark: mapping cost per frame per mapping kind, decode cost per message per input
kind, and OSC ingest rate into the live engine while it plays.

    python benchmarks/bench_control.py [--quick] [--model MODEL.ts]

Per-frame cost is what the decode worker spends in ``controller.target`` once per model frame;
per-message cost is ``validate`` (OSC thread) plus ``on_event`` (decode worker) for one message.
The ingest part runs the engine CLI live (``--offline OUT --realtime``: clock-paced, OSC up, no
sound card), sends sensor messages at a fixed rate to the dancer-riot patch's port with one in
ten deliberately invalid (a counted tag, since the engine reports rejections, not acceptances),
and reads rejected counts and underruns from its final line. Goal: ≥ 5,000 msg/s with 0
underruns. Rate 0 is the baseline from the same run (audio only): on a shared machine,
compare underruns against it, not against zero. JSON to stdout and to ``benchmarks/results/control.json``. ``--quick`` skips ingest.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.common import cpu  # noqa: E402
from instrument.link.events import Event  # noqa: E402
from instrument.patch import PatchContext, load_patch  # noqa: E402
from instrument.patch.chain import ChainController  # noqa: E402
from instrument.patch.contract import ControlState  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "control.json"
LATENT = 8


def _riot(acc: tuple[float, float, float]) -> tuple[float, ...]:
    return (*acc, 0, 0, 0, 0.1, 0.2, 0.3, 4.0, 0, 0, 100, 200, 1, 0, 0, 0, 0, 0, 0, 0)


def _stats_us(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1e6
    return {
        "mean_us": round(float(a.mean()), 2),
        "p50_us": round(float(np.percentile(a, 50)), 2),
        "p99_us": round(float(np.percentile(a, 99)), 2),
    }


def _write_patch(tmp: Path, name: str, body: str) -> Path:
    p = tmp / f"{name}.toml"
    p.write_text(f'[patch]\nname = "{name}"\n{body}', encoding="utf-8")
    return p


def _controllers(tmp: Path) -> dict[str, Any]:
    """One controller per mapping kind, each fed the inputs it maps."""
    ctx = PatchContext(LATENT, 48000, encode=lambda a: np.zeros((LATENT, a.shape[1] // 256)) + 0.1)
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    out["direct"] = load_patch("default", context=ctx).controller
    out["matrix (dancer-riot, 7 inputs, 1€)"] = load_patch("dancer-riot", context=ctx).controller
    import soundfile

    soundfile.write(tmp / "loop.wav", np.zeros(48000, dtype=np.float32), 48000)
    loop = _write_patch(
        tmp, "loop", '[[input]]\nkind = "touchosc"\n[mapping]\nkind = "loop"\nloop = "loop.wav"\n'
        'inputs = ["touchosc.0.tilt_x", "touchosc.0.tilt_y"]\n',
    )  # fmt: skip
    out["loop (I2, 2 inputs)"] = load_patch(loop, context=ctx).controller
    for model in ("knn", "mlp"):
        p = _write_patch(
            tmp, model, '[[input]]\nkind = "osc"\nname = "pad"\naddress = "/pad"\n[mapping]\n'
            f'kind = "regression"\nmodel = "{model}"\ninputs = ["pad.0", "pad.1", "pad.2", "pad.3"]\n',
        )  # fmt: skip
        c = load_patch(p, context=ctx).controller
        assert isinstance(c, ChainController)
        demos = c.mapping.demos
        assert demos is not None
        for _ in range(200):
            demos.add(rng.uniform(0, 1, 4), rng.normal(0, 1, LATENT))
        demos.train(mlp_steps=300)
        c.running = True
        out[f"regression {model} (4 in, 200 examples)"] = c
    return out


def bench_mapping(frames: int = 3000) -> dict[str, Any]:
    """Cost of ``target()`` per frame for each mapping kind (µs)."""
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        for name, c in _controllers(Path(d)).items():
            state = ControlState(LATENT)
            # Warm the inputs so the mapping does real work (held values, not rest shortcuts).
            for k in range(50):
                t = k * 0.005
                c.on_event(Event(t, "/0/raw", _riot((math.sin(t), 0.2, 1.0))), state)
                c.on_event(Event(t, "/1/raw", _riot((0.1, math.cos(t), 1.0))), state)
                c.on_event(Event(t, "/accxyz", (0.1, 0.2, 0.9)), state)
                c.on_event(Event(t, "/pad", (0.1, 0.2, 0.3, 0.4)), state)
            times = []
            t = 0.25
            for _ in range(frames):
                t0 = time.perf_counter()
                c.target(t, state)
                times.append(time.perf_counter() - t0)
                t += 256 / 48000
            result[name] = _stats_us(times[100:])
    return result


def bench_messages(n: int = 3000) -> dict[str, Any]:
    """Cost of validate + on_event for one message of each input kind (µs)."""
    from tests.test_mappings_hands import mediapipe_args, synthetic_hand

    ctx = PatchContext(LATENT, 48000)
    hand = mediapipe_args(synthetic_hand(0.3, 0.5, side="left"), synthetic_hand(0.7, 0.5))
    cases = {
        "riot-v2 /<id>/raw (22 floats)": ("dancer-riot", "/0/raw", _riot((0.1, 0.2, 1.0))),
        "comote-v3 accelerometer": (
            "phone-imu",
            "/comote/v3/1/accelerometer",
            (1.0, 2.0, 9.0, 1, 100),
        ),
        "mediapipe-osc 2 hands (169 floats)": ("hands", "/mediapipe/hands", tuple(hand)),
        "midi cc": ("midi-controller", "/midi/cc", (1, 3, 64)),
        "wek inputs (8 floats)": ("wekinator", "/wek/inputs", tuple(range(8))),
    }
    result: dict[str, Any] = {}
    for name, (patch, address, args) in cases.items():
        c = load_patch(patch, context=ctx).controller
        state = ControlState(LATENT)
        validate_s, event_s = [], []
        for k in range(n):
            t0 = time.perf_counter()
            a = c.validate(address, args)
            t1 = time.perf_counter()
            c.on_event(Event(k * 0.005, address, a), state)
            t2 = time.perf_counter()
            validate_s.append(t1 - t0)
            event_s.append(t2 - t1)
        result[name] = {
            "validate": _stats_us(validate_s[100:]),
            "on_event": _stats_us(event_s[100:]),
        }
    return result


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_ingest(model: Path, rate: float, seconds: float = 3.0) -> dict[str, Any]:
    """Run the live engine and send riot frames at ``rate`` msg/s to its sensor port."""
    from pythonosc.osc_message_builder import OscMessageBuilder

    sensor_port, osc_port = _free_port(), _free_port()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        text = (ROOT / "patches" / "dancer-riot.toml").read_text(encoding="utf-8")
        patch = tmp / "bench.toml"
        patch.write_text(text.replace("port = 8888", f"port = {sensor_port}"), encoding="utf-8")
        cmd = [sys.executable, str(ROOT / "run_instrument.py"), "--offline", str(tmp / "o.wav"),
               "--realtime", "--seconds", str(seconds + 2.0), "--patch", str(patch), "--model",
               str(model), "--no-ui", "--osc-port", str(osc_port),
               "--state-to", f"127.0.0.1:{_free_port()}"]  # fmt: skip
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        lines: list[str] = []
        ready = threading.Event()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.rstrip())
                if line.startswith("Sillage ready"):
                    ready.set()
            ready.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        ready.wait(180)
        good = OscMessageBuilder("/0/raw")
        for v in _riot((0.1, 0.2, 1.0)):
            good.add_arg(float(v))
        good_d = good.build().dgram
        tag = OscMessageBuilder("/0/raw")
        tag.add_arg("tag")  # invalid on purpose: counted as 'arity'
        tag_d = tag.build().dgram
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        total = int(rate * seconds)
        t0 = time.perf_counter()
        for k in range(total):
            sock.sendto(tag_d if k % 10 == 9 else good_d, ("127.0.0.1", sensor_port))
            if k % 50 == 49:
                ahead = t0 + (k + 1) / rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
        sent_s = time.perf_counter() - t0
        sock.close()
        proc.wait(timeout=seconds + 120)
        reader.join(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    stopped = next((ln for ln in lines if ln.startswith("Sillage stopped")), "")
    tags = total // 10
    seen = int(m.group(1)) if (m := re.search(r"'arity': (\d+)", stopped)) else 0
    under = int(m.group(1)) if (m := re.search(r"underruns (\d+)", stopped)) else -1
    return {
        "target_msg_per_s": rate,
        "sent_msg_per_s": round(total / sent_s),
        "received_fraction": round(seen / max(tags, 1), 4) if tags else None,
        "ingested_msg_per_s": round(total / max(sent_s, 1e-9) * seen / max(tags, 1)),
        "underruns": under,
        "engine_line": stopped,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip the live ingest runs")
    parser.add_argument(
        "--model", type=Path, default=None, help="model for the ingest runs (default: a tiny one)"
    )
    parser.add_argument(
        "--rates", default="0,5000,10000,20000",
        help="ingest rates to try, msg/s; 0 is the baseline (audio only, same conditions)",
    )  # fmt: skip
    args = parser.parse_args()
    report: dict[str, Any] = {
        "machine": {
            "cpu": cpu(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_1m": os.getloadavg()[0],
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "latent_size": LATENT,
        # For scale: one frame of a ratio-256 model at 48 kHz lasts this long.
        "frame_period_us_ratio256_48k": round(256 / 48000 * 1e6, 1),
        "mapping_target_per_frame": bench_mapping(),
        "message_cost": bench_messages(),
    }
    if not args.quick:
        model = args.model
        if model is None:
            from models.testing import make_tiny_model

            model = make_tiny_model(
                Path(tempfile.mkdtemp()) / "tiny.ts", latent_size=LATENT, ratio=256
            )
        report["ingest_model"] = str(model)
        report["ingest"] = [bench_ingest(model, float(r)) for r in args.rates.split(",")]
    text = json.dumps(report, indent=2)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

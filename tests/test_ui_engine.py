"""The UI against the real engine: OSC round trip, and killing the UI leaves the engine playing.

The engine runs headless and clock-paced (``run_instrument.py --offline OUT.wav --realtime``)
with its OSC server up; the UI runs as its own process, offscreen. Waits are on lines printed
by the processes and on OSC messages, each bounded by a timeout.
"""

from __future__ import annotations

import math
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mappings.latentmap import LatentMap
from ui.link import EngineLink

ROOT = Path(__file__).resolve().parent.parent
ENGINE_SECONDS = 300.0  # an upper bound: tests stop the engine with SIGTERM when done
TIMEOUT_S = 30.0

pytestmark = pytest.mark.skipif(
    not (ROOT / "run_instrument.py").is_file(),
    reason="run_instrument.py (the engine) not there yet",
)


class Proc:
    """A child process whose output lines are read into a queue as they come."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.ready_at = math.nan
        self.popen = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout: float = TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            if line.startswith(prefix):
                return line
        tail = "\n".join(self.seen[-20:])
        raise AssertionError(f"no line starting {prefix!r} within {timeout} s; output:\n{tail}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)
        self._pump_thread.join(timeout=10)  # EOF once the process is gone
        assert self.popen.stdout is not None
        self.popen.stdout.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def model_and_map(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from models.testing import make_tiny_model
    from ui.demo import demo_map

    root = tmp_path_factory.mktemp("engine")
    model = make_tiny_model(root / "tiny.ts", latent_size=4, ratio=64)
    m = demo_map(800, latent_size=4)
    # Keep the latents in the range a tiny model plays sensibly.
    m = LatentMap(m.latents / np.abs(m.latents).max() * 2.0, m.xy, source_index=m.source_index)
    path = root / "tiny.map.npz"
    m.save(path)
    return model, path


@pytest.fixture()
def engine(model_and_map: tuple[Path, Path], tmp_path: Path) -> Iterator[tuple[Proc, int, Path]]:
    model, map_path = model_and_map
    port = _free_port()
    out = tmp_path / "played.wav"
    # A generous prebuffer (170 ms): the machine is shared, and this test is about the UI.
    cmd = [sys.executable, "run_instrument.py", "--model", str(model), "--map", str(map_path),
           "--offline", str(out), "--seconds", str(ENGINE_SECONDS), "--realtime",
           "--osc-port", str(port), "--no-ui", "--prebuffer", "8192",
           "--state-to", f"127.0.0.1:{_free_port()}"]  # fmt: skip
    proc = Proc(cmd)
    try:
        proc.wait_for("Sillage ready")
        proc.ready_at = time.monotonic()
        yield proc, port, out
    finally:
        proc.stop()


def _subscribe(port: int) -> tuple[EngineLink, threading.Event]:
    woken = threading.Event()
    link = EngineLink(("127.0.0.1", port), listen_port=0, listen_host="127.0.0.1",
                      notify=woken.set)  # fmt: skip
    link.start()
    return link, woken


def _take_until(link: EngineLink, woken: threading.Event, key: str, ok: object) -> dict:
    """Collect state until ``ok(values)`` holds for the latest value of ``key``."""
    deadline = time.monotonic() + TIMEOUT_S
    latest: dict = {}
    events: list = []
    while time.monotonic() < deadline:
        woken.wait(1.0)
        woken.clear()
        snap = link.take()
        latest.update(snap.values)
        events.extend(snap.events)
        latest["_events"] = events
        if key in latest and ok(latest):  # type: ignore[operator]
            return latest
    raise AssertionError(f"state {key} never satisfied the condition; last {latest.get(key)}")


def test_round_trip_with_the_engine(
    engine: tuple[Proc, int, Path], model_and_map: tuple[Path, Path]
) -> None:
    _, port, _ = engine
    m = LatentMap.load(model_and_map[1])
    link, woken = _subscribe(port)
    try:
        state = _take_until(link, woken, "model", lambda v: True)
        assert state["model"][3] == 4
        # A fitted point: to_latent is exact there, so the engine's xy converges to it.
        x, y = (float(v) for v in m.xy[123])
        link.send_xy(x, y)
        state = _take_until(
            link, woken, "xy", lambda v: abs(v["xy"][0] - x) < 1e-3 and abs(v["xy"][1] - y) < 1e-3
        )
        # ... and it plays that point's latent: dragging on the map changes the sound.
        np.testing.assert_allclose(state["latent"], m.latents[123], atol=1e-2)
        link.send_label("breath", 0.3, 0.6)
        # Labels are relayed to every subscriber (a Max patch, another UI).
        _take_until(
            link,
            woken,
            "_events",
            lambda v: any(e[:2] == ("label", "breath") for e in v["_events"]),
        )
    finally:
        link.close()


def test_killing_the_ui_leaves_the_engine_playing(
    engine: tuple[Proc, int, Path], model_and_map: tuple[Path, Path]
) -> None:
    proc, port, out = engine
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    ui = Proc([sys.executable, "-m", "ui", "--engine", f"127.0.0.1:{port}", "--listen", "0",
               "--map", str(model_and_map[1])], env=env)  # fmt: skip
    link, woken = _subscribe(port)
    try:
        ui.wait_for("Sillage UI: connected")
        link.send_xy(0.2, 0.3)
        before = _take_until(link, woken, "underruns", lambda v: True)["underruns"]
        ui.popen.send_signal(signal.SIGKILL)  # a crash, not a polite close
        ui.popen.wait(timeout=10)
        killed_at = time.monotonic()
        # Keep playing for 3 s after the crash and watch the engine's own count.
        x = 0.2
        while time.monotonic() - killed_at < 3.0:
            x = 0.2 + (x + 0.05) % 0.7
            link.send_xy(x, 0.5)
            state = _take_until(link, woken, "underruns", lambda v: True)
        # What the crash changed (a machine shared with other work may underrun on its own,
        # which the engine's own tests cover; this one is about the UI).
        assert state["underruns"] == before, f"{before} underruns before the kill, then more"
    finally:
        link.close()
        ui.stop()
    proc.popen.send_signal(signal.SIGTERM)  # the end of the performance
    stopped_at = time.monotonic()
    stopped = proc.wait_for("Sillage stopped")
    underruns = int(re.search(r"underruns (\d+)", stopped).group(1))  # type: ignore[union-attr]
    assert underruns == before, stopped
    proc.wait_for("Sillage: wrote")
    import soundfile as sf

    audio, sr = sf.read(str(out), dtype="float32", always_2d=True)
    assert len(audio) >= 0.9 * (stopped_at - proc.ready_at) * sr
    # Sound all the way from the crash to the end, in every half second.
    after = audio[int((killed_at - proc.ready_at) * sr) :]
    half = sr // 2
    rms = [np.sqrt(np.mean(after[i : i + half] ** 2)) for i in range(0, len(after) - half, half)]
    assert len(rms) >= 4 and min(rms) > 1e-4, rms

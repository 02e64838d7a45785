"""OSC end to end over real UDP on 127.0.0.1, against the live engine (clock-paced, headless).

Waits on received messages (threading.Event), never on sleeps.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient
from scipy.io import wavfile

from tests.conftest import ROOT


class StateListener:
    """Receives the engine's state; ``wait_for(address, predicate)`` blocks until it matches."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, tuple[Any, ...]]] = []
        self._cond = threading.Condition()
        d = Dispatcher()
        d.set_default_handler(self._on)
        self.server = BlockingOSCUDPServer(("127.0.0.1", 0), d)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def _on(self, address: str, *args: Any) -> None:
        with self._cond:
            self.messages.append((address, args))
            self._cond.notify_all()

    def wait_for(
        self, address: str, predicate=lambda args: True, timeout: float = 20.0
    ) -> tuple[Any, ...]:
        with self._cond:
            found: list[tuple[Any, ...]] = []

            def check() -> bool:
                for a, args in self.messages:
                    if a == address and predicate(args):
                        found.append(args)
                        return True
                return False

            assert self._cond.wait_for(check, timeout), (
                f"no {address} matching in {timeout} s; got {sorted({a for a, _ in self.messages})}"
            )
            return found[0]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


READY = re.compile(r"Sillage ready: OSC on [\d.]+:(\d+)")


def launch(model: Path, out: Path, *extra: str, **popen: Any) -> subprocess.Popen[str]:
    """The live engine, clock-paced and headless (``--offline OUT --realtime``), OSC on a free port."""
    return subprocess.Popen(
        [sys.executable, "-u", "run_instrument.py", "--offline", str(out), "--seconds", "60",
         "--realtime", "--model", str(model), "--osc-port", "0", "--no-ui", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen,
    )  # fmt: skip


def wait_ready(proc: subprocess.Popen[str], lines: list[str] | None = None) -> int:
    """Read the engine's output up to its ready line; return the OSC port."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if lines is not None:
            lines.append(line)
        m = READY.match(line)
        if m:
            return int(m.group(1))
    raise AssertionError("the engine exited before it was ready:\n" + "".join(lines or []))


@pytest.fixture()
def engine(mono_model: Path, tmp_path: Path) -> Iterator[dict[str, Any]]:
    out = tmp_path / "played.wav"
    # --state-to a port nobody listens on: sending there must not hurt
    proc = launch(
        mono_model, out, "--prebuffer", "512", "--state-to", "127.0.0.1:9",
        "--models-dir", str(tmp_path),
    )  # fmt: skip
    lines: list[str] = []
    port = [wait_ready(proc, lines)]

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    info = {"port": port[0], "proc": proc, "lines": lines, "out": out}
    try:
        yield info
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(timeout=5)
        if proc.stdout:
            proc.stdout.close()


def _pitch(x: np.ndarray, sr: int = 48000) -> float:
    n = 8192
    spec = np.abs(np.fft.rfft(x[:n] * np.hanning(n)))
    return float(np.fft.rfftfreq(n, 1 / sr)[np.argmax(spec)])


def test_osc_moves_the_latent_and_the_sound(engine: dict[str, Any]) -> None:
    listener = StateListener()
    try:
        client = SimpleUDPClient("127.0.0.1", engine["port"])
        client.send_message("/sillage/subscribe", listener.port)
        _name, sr, ratio, latent = listener.wait_for("/sillage/state/model")
        assert (sr, ratio, latent) == (48000, 64, 4)
        listener.wait_for("/sillage/state/latent", lambda a: abs(a[0]) < 1e-6)
        client.send_message("/sillage/latent", [2, 0.5, 0.0, 0.0])  # ints and floats alike
        listener.wait_for("/sillage/state/latent", lambda a: a[0] > 1.99 and abs(a[1] - 0.5) < 0.01)
        client.send_message("/sillage/latent/0", -2.0)
        listener.wait_for("/sillage/state/latent", lambda a: a[0] < -1.99)
        lat = listener.wait_for(
            "/sillage/state/latency_ms", lambda a: a[0] > 0
        )  # measured (-1 before)
        assert 0 < lat[0] < 200
        level = listener.wait_for("/sillage/state/level")
        assert level[0] > -60
        # state never goes to the sender's source port
        client._sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            client._sock.recv(4096)
        client._sock.close()
    finally:
        listener.close()
    engine["proc"].send_signal(signal.SIGTERM)
    engine["proc"].wait(timeout=30)
    sr, audio = wavfile.read(engine["out"])
    audio = audio[:, 0] if audio.ndim == 2 else audio
    assert len(audio) > sr // 2
    # latent dim 0 is the fixture's pitch: 0 → 220 Hz, 2 → 440 Hz, -2 → 110 Hz
    pitches = [_pitch(audio[i : i + 8192]) for i in range(0, len(audio) - 8192, 2048)]
    assert abs(pitches[0] - 220) < 12 or abs(pitches[0] - 440) < 12  # the first OSC came fast
    assert any(abs(p - 440) < 12 for p in pitches), pitches
    assert abs(pitches[-1] - 110) < 12, pitches


def test_bad_input_is_counted_reported_and_harmless(engine: dict[str, Any]) -> None:
    listener = StateListener()
    client = SimpleUDPClient("127.0.0.1", engine["port"])
    try:
        client.send_message("/sillage/subscribe", listener.port)
        client.send_message("/sillage/latent/1", 1.0)
        listener.wait_for("/sillage/state/latent", lambda a: a[1] > 0.99)
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        bad = [b"garbage", b"/sillage/latent\x00", b"#bundle\x00trunc", b"\x00" * 3, b"/x" * 3000]
        for i in range(200):
            raw.sendto(bad[i % len(bad)], ("127.0.0.1", engine["port"]))
        raw.close()
        client.send_message("/sillage/latent/0", float("nan"))
        client.send_message("/sillage/latent/0", "loud")
        client.send_message("/sillage/latent/7", 1.0)  # the model has 4 dims
        client.send_message("/sillage/gain_db", [1.0, 2.0])
        client.send_message("/nowhere", 1)
        err = listener.wait_for("/sillage/state/error")
        assert "rejected" in err[0]
        # a malformed panic (unknown type tags) is refused, not run as a bare panic
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.sendto(b"/sillage/panic\x00\x00,xyz\x00\x00\x00\x00", ("127.0.0.1", engine["port"]))
        raw.close()
        client.send_message("/sillage/latent/0", 0.25)
        listener.wait_for("/sillage/state/latent", lambda a: abs(a[0] - 0.25) < 1e-3)
        listener.messages.clear()
        assert listener.wait_for("/sillage/state/latent")[1] > 0.99  # no panic: dim 1 stayed
        # still playing and still listening: a good message after the storm lands
        client.send_message("/sillage/latent/1", -1.0)
        listener.wait_for("/sillage/state/latent", lambda a: a[1] < -0.99)
        assert listener.wait_for("/sillage/state/level")[0] > -60
        assert listener.wait_for("/sillage/state/underruns")[0] == 0
    finally:
        client._sock.close()
        listener.close()
    engine["proc"].send_signal(signal.SIGTERM)
    engine["proc"].wait(timeout=30)
    text = "".join(engine["lines"])
    summary = next(line for line in engine["lines"] if line.startswith("Sillage stopped"))
    for kind in ("malformed", "nan", "type", "range", "arity", "unknown_address"):
        assert f"'{kind}'" in summary, (kind, summary)
    assert "Traceback" not in text


def test_record_and_tag_write_a_replayable_session(mono_model: Path, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    out = tmp_path / "live.wav"
    proc = launch(mono_model, out, "--record-dir", str(rec))
    port = wait_ready(proc)
    listener = StateListener()
    client = SimpleUDPClient("127.0.0.1", port)
    try:
        client.send_message("/sillage/subscribe", listener.port)
        client.send_message("/sillage/record", 1)
        client.send_message("/sillage/latent/0", 2.0)
        listener.wait_for("/sillage/state/latent", lambda a: a[0] > 1.99)
        client.send_message("/sillage/tag", "keep")
        client.send_message("/sillage/latent/0", -1.0)
        listener.wait_for("/sillage/state/latent", lambda a: a[0] < -0.99)
        client.send_message("/sillage/record", 0)
    finally:
        listener.close()
        client._sock.close()
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=30)
    proc.stdout.close()
    assert proc.returncode == 0, rest
    sessions = [p for p in rec.iterdir() if p.is_dir()]
    assert len(sessions) == 1
    score = (sessions[0] / "score.jsonl").read_text().splitlines()
    assert any('"/sillage/latent/0", "args": [2.0]' in line for line in score), score
    assert any('"/sillage/tag"' in line for line in score)
    audio, sr = sf.read(sessions[0] / "audio.wav")
    assert sr == 48000 and len(audio) > 0.05 * sr and np.abs(audio).max() > 0.01
    tags = [json.loads(line) for line in (rec / "tags.jsonl").read_text().splitlines()]
    assert len(tags) == 1 and tags[0]["word"] == "keep" and tags[0]["latent"][0] > 1.9
    # the session's score replays offline through the same engine
    replay = tmp_path / "replay.wav"
    res = subprocess.run(
        [
            sys.executable,
            "run_instrument.py",
            "--offline",
            str(replay),
            "--seconds",
            "1",
            "--model",
            str(mono_model),
            "--score",
            str(sessions[0] / "score.jsonl"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert "rejected events: 0" in res.stdout


def test_ctrl_c_stops_cleanly(mono_model: Path, tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group (control and decode processes): a clean stop."""
    import os

    proc = launch(mono_model, tmp_path / "o.wav", start_new_session=True)
    wait_ready(proc)
    os.killpg(proc.pid, signal.SIGINT)
    rest, _ = proc.communicate(timeout=30)
    proc.stdout.close()
    assert proc.returncode == 0, rest
    assert "Sillage stopped" in rest and "Traceback" not in rest, rest
    assert (tmp_path / "o.wav").stat().st_size > 1000


def test_bad_model_and_patch_loads_keep_playing_and_good_ones_swap(
    engine: dict[str, Any], tmp_path: Path, stereo_model: Path
) -> None:
    from tests.modelfixtures import corrupt_model, wrong_interface_model

    listener = StateListener()
    client = SimpleUDPClient("127.0.0.1", engine["port"])
    try:
        client.send_message("/sillage/subscribe", listener.port)
        client.send_message("/sillage/latent/0", 1.5)
        listener.wait_for("/sillage/state/latent", lambda a: a[0] > 1.49)
        for bad in (corrupt_model(tmp_path / "c.ts"), wrong_interface_model(tmp_path / "w.ts")):
            client.send_message("/sillage/model", str(bad))
        client.send_message("/sillage/patch", "no-such-patch")
        err = listener.wait_for("/sillage/state/error", lambda a: "no-such-patch" in a[0])
        assert "--patches-dir" in err[0]  # the message names the fix
        # nothing moved: same model, same latent, still sounding
        listener.messages.clear()
        assert listener.wait_for("/sillage/state/latent")[0] > 1.49
        assert listener.wait_for("/sillage/state/level")[0] > -60
        # a good model swaps in at a frame boundary and is announced
        client.send_message("/sillage/model", str(stereo_model))
        assert listener.wait_for("/sillage/state/model", lambda a: a[0] == "osc-stereo")[2] == 128
        client.send_message("/sillage/patch", "dancer-riot")
        # sensor patches move around the centre (no sensor here: the latent sits on it)
        client.send_message("/sillage/centre", [-1.0, 0.0, 0.0, 0.0])
        listener.wait_for("/sillage/state/latent", lambda a: a[0] < -0.99)
    finally:
        listener.close()
        client._sock.close()
    engine["proc"].send_signal(signal.SIGTERM)
    engine["proc"].wait(timeout=30)
    text = "".join(engine["lines"])
    assert "ModelError" in text and "not a loadable TorchScript model" in text
    assert "no 'decode' method" in text
    assert "loaded model" in text and "loaded patch dancer-riot" in text
    assert "Traceback" not in text

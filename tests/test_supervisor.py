"""Live faults: a bad frame and a dead decode process, against the real two-process engine
(clock-paced, headless) over real OSC on 127.0.0.1. Waits on messages, never on sleeps."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any

from pythonosc.udp_client import SimpleUDPClient

from tests.modelfixtures import fault_model
from tests.test_osc_e2e import StateListener, launch, wait_ready


def _decode_pid(engine_pid: int) -> int:
    """The decode process: the engine's child started by multiprocessing's spawn."""
    # every thread's children: after a restart the decode process is the restarting thread's
    children = [
        pid for task in Path(f"/proc/{engine_pid}/task").glob("*")
        for pid in (task / "children").read_text().split()
    ]  # fmt: skip
    for pid in children:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"multiprocessing" in cmd and b"resource_tracker" not in cmd:
            return int(pid)
    raise AssertionError(f"no decode process among {children}")


def _finish(proc: Any) -> str:
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    proc.stdout.close()
    return rest


def test_nan_live_is_reported_and_the_sound_comes_back(tmp_path: Path) -> None:
    model = fault_model(tmp_path / "fault.ts")
    proc = launch(model, tmp_path / "o.wav", "--prebuffer", "1024")
    lines: list[str] = []
    port = wait_ready(proc, lines)
    listener = StateListener()
    client = SimpleUDPClient("127.0.0.1", port)
    try:
        client.send_message("/sillage/subscribe", listener.port)
        client.send_message("/sillage/smoothing_ms", 0.0)
        listener.wait_for("/sillage/state/level", lambda a: a[0] > -40)
        client.send_message("/sillage/latent/3", 2.0)  # NaN into the model's state
        err = listener.wait_for("/sillage/state/error", lambda a: "bad frame" in a[0])
        assert "NaN" in err[0] and "reset" in err[0]
        client.send_message("/sillage/latent/3", 0.0)
        listener.wait_for("/sillage/state/error", lambda a: "sounds again" in a[0])
        listener.messages.clear()
        listener.wait_for("/sillage/state/level", lambda a: a[0] > -40)  # heard again
    finally:
        listener.close()
        client._sock.close()
    rest = _finish(proc)
    assert proc.returncode == 0, rest
    summary = next(line for line in rest.splitlines() if line.startswith("Sillage stopped"))
    assert "bad frames" in summary, summary
    assert "Traceback" not in rest


def test_a_killed_decode_process_is_reported_and_restarted_where_it_was(
    mono_model: Path, tmp_path: Path
) -> None:
    proc = launch(mono_model, tmp_path / "o.wav", "--prebuffer", "1024")
    port = wait_ready(proc)
    listener = StateListener()
    client = SimpleUDPClient("127.0.0.1", port)
    try:
        client.send_message("/sillage/subscribe", listener.port)
        client.send_message("/sillage/latent/0", 1.5)
        listener.wait_for("/sillage/state/latent", lambda a: a[0] > 1.49)
        os.kill(_decode_pid(proc.pid), signal.SIGKILL)
        err = listener.wait_for("/sillage/state/error", lambda a: "DIED" in a[0])
        assert "SIGKILL" in err[0] and "NO SOUND" in err[0]
        listener.wait_for("/sillage/state/error", lambda a: "is back" in a[0], timeout=60)
        listener.messages.clear()
        # the new process plays the same latent, and still listens
        listener.wait_for("/sillage/state/latent", lambda a: a[0] > 1.49)
        listener.wait_for("/sillage/state/level", lambda a: a[0] > -60)
        client.send_message("/sillage/latent/0", -1.0)
        listener.wait_for("/sillage/state/latent", lambda a: a[0] < -0.99)
    finally:
        listener.close()
        client._sock.close()
    rest = _finish(proc)
    assert proc.returncode == 0, rest
    assert "decode process restarts 1" in rest.replace(", ", "  "), rest


def test_a_decode_process_that_cannot_come_back_exits_non_zero(
    mono_model: Path, tmp_path: Path
) -> None:
    model = shutil.copy(mono_model, tmp_path / "gone.ts")
    proc = launch(Path(model), tmp_path / "o.wav", "--prebuffer", "1024")
    wait_ready(proc)
    Path(model).unlink()  # the restart cannot load it
    os.kill(_decode_pid(proc.pid), signal.SIGKILL)
    rest, _ = proc.communicate(timeout=120)
    proc.stdout.close()
    assert proc.returncode == 1, rest
    assert "DIED" in rest and "restart failed" in rest and "not found" in rest, rest
    assert "Traceback" not in rest

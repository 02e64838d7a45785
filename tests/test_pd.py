"""The Pd companion patch, run in real Pure Data (vanilla, Debian ``puredata``).

A small driver patch, written per test, opens ``patches/pd/sillage-control.pd`` as an
abstraction ``[sillage-control ENGINE_PORT STATE_PORT]`` and plays it through its receive
names (``[; sillage-latent-0 2(``), exactly as a user's own patch would. Sockets are real
UDP on 127.0.0.1; the tests wait on events, never on sleeps.

- the send path, against a python-osc server: every input address in the table arrives
  as the exact message the table's example describes, and passes the server's validation;
- the state path: state messages sent to the patch reach its ``sillage-state-*`` sends;
- against the engine (``run_instrument.py --offline OUT.wav --realtime``): moving the
  latent from Pd changes the pitch of what the engine played, gain from Pd lowers its level.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

from instrument import companion
from instrument.protocol import DEFAULT_OSC_PORT, DEFAULT_STATE_PORT, INPUTS, OUTPUTS, validate

ROOT = Path(__file__).resolve().parent.parent
PD_DIR = ROOT / companion.PD_CONTROL.parent


def _find_pd() -> str | None:
    found = shutil.which("pd")
    if found:
        return found
    # Debian puts the binary here and links /usr/bin/pd through update-alternatives.
    fallback = Path("/usr/lib/puredata/bin/pd")
    return str(fallback) if fallback.is_file() else None


PD = _find_pd()
pytestmark = pytest.mark.skipif(
    PD is None, reason="Pure Data not found (no `pd` on PATH): `make test` installs puredata-core"
)


# --- helpers -------------------------------------------------------------------------------


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pd_atoms(text: str) -> str:
    """Escape a message for a Pd message box inside a .pd file."""
    return text.replace("$", "\\$").replace(",", " \\,").replace(";", " \\;")


def write_driver(
    path: Path,
    *,
    engine_port: int,
    state_port: int,
    steps: Sequence[tuple[float, Sequence[str]]],
    quit_ms: float,
    prints: Sequence[str] = (),
) -> Path:
    """A test-only patch: ``[sillage-control ENGINE STATE]``, then ``steps`` on its receives.

    ``steps`` are (milliseconds after load, ["receive-name args", ...]); each becomes a
    ``[delay]`` and a message box of ``; name args`` sends. ``prints`` are receive names
    echoed to stderr by ``[print NAME]``. The patch quits Pd after ``quit_ms``.
    """
    lines = ["#N canvas 0 50 800 600 12;"]
    conns: list[str] = []

    def add(line: str) -> int:
        lines.append(line)
        return len(lines) - 2

    add(f"#X obj 10 10 sillage-control {engine_port} {state_port};")
    lb = add("#X obj 10 40 loadbang;")
    for k, (ms, messages) in enumerate([*steps, (quit_ms, ["pd quit"])]):
        d = add(f"#X obj {10 + 150 * k} 70 delay {ms:g};")
        body = " ".join(f"\\; {_pd_atoms(m)}" for m in messages)
        m = add(f"#X msg {10 + 150 * k} 100 {body};")
        conns += [f"#X connect {lb} 0 {d} 0;", f"#X connect {d} 0 {m} 0;"]
    for k, name in enumerate(prints):
        r = add(f"#X obj {10 + 200 * k} 300 r {name};")
        p = add(f"#X obj {10 + 200 * k} 330 print {name};")
        conns.append(f"#X connect {r} 0 {p} 0;")
    path.write_text("\n".join(lines + conns) + "\n", encoding="utf-8")
    return path


def run_pd(driver: Path, *, batch: bool, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run a driver patch headless; ``batch`` runs logical time as fast as it can."""
    assert PD is not None
    cmd = [PD, "-nogui", "-nosound", "-nomidi", "-stderr", "-path", str(PD_DIR)]
    if batch:
        cmd.append("-batch")
    done = subprocess.run(
        [*cmd, str(driver)], capture_output=True, text=True, timeout=timeout, cwd=driver.parent
    )
    assert done.returncode == 0, f"pd exited {done.returncode}: {done.stderr[-2000:]}"
    # Pd reports objects it could not create (a typo, a missing abstraction) only on stderr.
    for bad in ("couldn't create", "bad arguments", "error:"):
        assert bad not in done.stderr, done.stderr[-2000:]
    return done


@contextmanager
def osc_server(
    expected: int,
) -> Iterator[tuple[int, list[tuple[str, tuple[Any, ...]]], threading.Event]]:
    """A python-osc server on a free port; the event fires after ``expected`` messages."""
    received: list[tuple[str, tuple[Any, ...]]] = []
    enough = threading.Event()

    def handler(address: str, *args: Any) -> None:
        received.append((address, args))
        if len(received) >= expected:
            enough.set()

    dispatcher = Dispatcher()
    dispatcher.set_default_handler(handler)
    server = BlockingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), received, enough
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _parse_args(text: str) -> tuple[Any, ...]:
    out: list[Any] = []
    for word in text.split():
        try:
            out.append(float(word))
        except ValueError:
            out.append(word)
    return tuple(out)


def _same(got: tuple[Any, ...], want: tuple[Any, ...]) -> bool:
    if len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        if isinstance(w, float):
            # Pd floats are 32-bit: 0.3 arrives as 0.30000001192...
            if not isinstance(g, float) or not math.isclose(g, w, rel_tol=1e-6, abs_tol=1e-6):
                return False
        elif g != w:
            return False
    return True


def _input_messages() -> list[tuple[str, str, tuple[Any, ...]]]:
    """(Pd receive name, OSC address, args) for every input address, from its example."""
    out = []
    for a in INPUTS:
        path = a.path.replace("/<i>", "/0")
        example = a.example.split(maxsplit=1)
        args = example[1] if len(example) == 2 else ""
        out.append((companion.pd_name(path), path, _parse_args(args)))
    return out


# --- send path -----------------------------------------------------------------------------


def test_pd_sends_every_input_address_as_the_table_describes(tmp_path: Path) -> None:
    messages = _input_messages()
    state_port = _free_udp_port()
    expected = [("/sillage/subscribe", (float(state_port),))]
    expected += [(path, args) for _, path, args in messages]
    with osc_server(len(expected)) as (port, received, enough):
        sends = [f"{name} {' '.join(str(x) for x in args) or 'bang'}" for name, _, args in messages]
        driver = write_driver(
            tmp_path / "drive-send.pd",
            engine_port=port,
            state_port=state_port,
            steps=[(10, sends)],
            quit_ms=50,
        )
        run_pd(driver, batch=True)
        assert enough.wait(10), f"got {len(received)} of {len(expected)}: {received}"
    assert len(received) == len(expected), received
    for (got_path, got_args), (want_path, want_args) in zip(received, expected, strict=True):
        assert got_path == want_path
        assert _same(got_args, want_args), (got_path, got_args, want_args)
        validate(got_path, got_args)  # what Pd sends, the engine accepts (Pd sends floats)


def test_pd_subscribes_to_the_default_ports_when_opened_directly(tmp_path: Path) -> None:
    """Opened without arguments (as a user does), the patch falls back to 7770 and 7771.

    Checked on the file, not by running it: running it would subscribe whatever engine
    listens on 7770 on this machine.
    """
    text = (ROOT / companion.PD_CONTROL).read_text(encoding="utf-8")
    for port in (DEFAULT_OSC_PORT, DEFAULT_STATE_PORT):
        assert re.search(rf"^#X msg \S+ \S+ {port};$", text, re.M), port
    assert "f \\$1;" in text and "f \\$2;" in text and "sel 0;" in text
    assert "connect 127.0.0.1 \\$1;" in text and "listen \\$1;" in text


# --- state path ----------------------------------------------------------------------------


def _state_args(types: str, k: int) -> tuple[Any, ...]:
    kinds = "fff" if types == "f*" else types
    out: list[Any] = []
    for j, t in enumerate(kinds):
        if t == "f":
            out.append(0.25 * (k + j + 1))
        elif t == "i":
            out.append(k + j + 3)
        else:
            out.append(f"w{k}x{j}")
    return tuple(out)


def test_pd_receives_every_state_address(tmp_path: Path) -> None:
    from pythonosc.udp_client import SimpleUDPClient

    state_port = _free_udp_port()
    names = [companion.pd_name(a.path) for a in OUTPUTS]
    with osc_server(1) as (port, received, subscribed):
        driver = write_driver(
            tmp_path / "drive-state.pd",
            engine_port=port,
            state_port=state_port,
            steps=[],
            quit_ms=1500,
            prints=names,
        )
        assert PD is not None
        proc = subprocess.Popen(
            [PD, "-nogui", "-nosound", "-nomidi", "-stderr", "-path", str(PD_DIR), str(driver)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert subscribed.wait(10), "Pd never sent /sillage/subscribe"
            assert received[0] == ("/sillage/subscribe", (float(state_port),))
            client = SimpleUDPClient("127.0.0.1", state_port)
            try:
                for k, a in enumerate(OUTPUTS):
                    client.send_message(a.path, list(_state_args(a.types, k)))
            finally:
                client._sock.close()  # python-osc never closes it (ResourceWarning)
            _, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    printed: dict[str, list[str]] = {}
    for line in err.splitlines():
        name, sep, rest = line.partition(": ")
        if sep and name in names:
            printed.setdefault(name, []).append(rest)
    for k, a in enumerate(OUTPUTS):
        name = companion.pd_name(a.path)
        assert name in printed, f"{a.path} never reached [r {name}]; stderr: {err[-1500:]}"
        words = printed[name][0].split()
        if words and words[0] in ("list", "symbol"):
            words = words[1:]
        assert _same(_parse_args(" ".join(words)), _expected_pd(_state_args(a.types, k))), (
            a.path,
            printed[name],
        )


def _expected_pd(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(float(x) if isinstance(x, int | float) else x for x in args)


# --- against the engine -------------------------------------------------------------------


def _dominant_hz(x: np.ndarray, samplerate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * samplerate / len(x))


def _rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12))


def test_pd_plays_the_engine(tmp_path: Path, mono_model: Path) -> None:
    """Pd moves latent 0 (pitch of the test oscillator model) then gain; the audio follows.

    The test model (``tests/modelfixtures.py``) maps latent 0 to pitch: 220 Hz at 0,
    440 Hz at 2. Pd sets latent 0 to 2, later gain to -20 dB; the file the engine wrote of
    what it played must go 220 Hz → 440 Hz, then drop ~20 dB, in that order.
    """
    import soundfile as sf

    cli = ROOT / "run_instrument.py"
    if not cli.is_file():
        pytest.skip("engine CLI missing (run_instrument.py)")
    wav = tmp_path / "played.wav"
    state_port = _free_udp_port()
    seconds = 4.0
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    engine = subprocess.Popen(
        [
            sys.executable, str(cli), "--offline", str(wav), "--seconds", str(seconds),
            "--realtime", "--osc-port", "0", "--no-ui", "--model", str(mono_model),
            "--state-to", f"127.0.0.1:{state_port}",
        ],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    out_lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert engine.stdout is not None
        for line in engine.stdout:
            out_lines.append(line)
            if line.startswith("Sillage ready"):
                ready.set()
        ready.set()  # exited early: let the test fail with the output

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(60), "engine never said 'Sillage ready'"
        m = re.search(r"OSC on [\d.]+:(\d+)", "".join(out_lines))
        assert m, "".join(out_lines)
        driver = write_driver(
            tmp_path / "drive-engine.pd",
            engine_port=int(m.group(1)),
            state_port=state_port,
            steps=[(600, ["sillage-latent-0 2"]), (1800, ["sillage-gain_db -20"])],
            quit_ms=2200,
            prints=["sillage-state-latent"],
        )
        pd = run_pd(driver, batch=False, timeout=30)
        assert engine.wait(timeout=60) == 0, "".join(out_lines)
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
        reader.join(timeout=5)
        if engine.stdout is not None:
            engine.stdout.close()
    log = "".join(out_lines)
    assert "rejected 0" in log, f"the engine rejected something Pd sent:\n{log}"

    audio, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    x = audio[:, 0]
    hop = sr // 10
    windows = [x[i : i + hop] for i in range(0, len(x) - hop + 1, hop)]
    hz = [_dominant_hz(w, sr) for w in windows]
    db = [_rms_db(w) for w in windows]
    assert len(windows) >= 30, f"only {len(x) / sr:.2f} s of audio"
    summary = [f"{h:.0f}Hz/{d:.0f}dB" for h, d in zip(hz, db, strict=True)]
    # Medians, not every window: a window hit by an underrun (a loaded CI machine) is silent.
    # Before Pd moves anything: the model's rest pitch.
    assert abs(float(np.median(hz[1:5])) - 220) <= 15, summary
    # At the end: an octave up, 20 dB down.
    assert abs(float(np.median(hz[-5:])) - 440) <= 15, summary
    up = [i for i, h in enumerate(hz) if abs(h - 440) <= 15]
    assert up, summary
    loud = float(np.median(db[up[0] : up[0] + 4]))
    assert 16 <= loud - float(np.median(db[-5:])) <= 24, summary
    quiet = [i for i, d in enumerate(db) if i > up[0] and d < loud - 10]
    assert quiet and quiet[0] - up[0] >= 4, f"pitch and gain did not change in order: {summary}"
    # The engine's state came back into the patch: the played latent, dimension 0 at 2.
    latents = [
        _parse_args(line.partition(": ")[2])
        for line in pd.stderr.splitlines()
        if line.startswith("sillage-state-latent: ")
    ]
    assert latents, f"no state reached the patch: {pd.stderr[-1500:]}"
    assert any(isinstance(v[0], float) and abs(v[0] - 2.0) < 0.05 for v in latents), latents[-3:]

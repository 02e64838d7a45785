"""The map window on a real X server: Qt's xcb platform under Xvfb, not offscreen.

The test starts Xvfb itself (installed by ``make test``), opens ``python -m ui`` against the
headless engine, finds the window with xdotool, drags the mouse across the map as a performer
would, and checks that the engine plays the points dragged to. A screenshot of the X screen
(taken through X, not by the window itself) goes to ``tests/artifacts/ui-xvfb.png``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mappings.latentmap import LatentMap
from tests.test_ui_engine import (  # noqa: F401  (engine and model_and_map are fixtures)
    Proc,
    _subscribe,
    _take_until,
    engine,
    model_and_map,
)

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"

pytestmark = pytest.mark.skipif(
    shutil.which("Xvfb") is None or shutil.which("xdotool") is None,
    reason="Xvfb and xdotool are installed by `make test` (tools/system-deps.sh test)",
)


@pytest.fixture()
def display() -> Iterator[str]:
    """A fresh Xvfb server; its display number comes back through -displayfd (no races)."""
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as f:
            number = f.readline().strip()
        assert number, "Xvfb gave no display number"
        yield f":{number}"
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=10)


def _xdotool(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"xdotool {' '.join(args)}: {done.stderr}"
    return done.stdout


def _drag_to(env: dict[str, str], x0: int, y0: int, x1: int, y1: int) -> None:
    _xdotool(env, "mousemove", "--sync", str(x0), str(y0), "mousedown", "1")
    for t in np.linspace(0.0, 1.0, 8)[1:]:
        x, y = round(x0 + t * (x1 - x0)), round(y0 + t * (y1 - y0))
        _xdotool(env, "mousemove", "--sync", str(x), str(y))
    _xdotool(env, "mouseup", "1")


def test_real_window_drag_plays_the_point(
    engine: tuple[Proc, int, Path],  # noqa: F811
    model_and_map: tuple[Path, Path],  # noqa: F811
    display: str,
) -> None:
    _, port, _ = engine
    env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb")
    env.pop("WAYLAND_DISPLAY", None)
    ui = Proc([sys.executable, "-m", "ui", "--engine", f"127.0.0.1:{port}", "--listen", "0",
               "--map", str(model_and_map[1])], env=env)  # fmt: skip
    link, woken = _subscribe(port)
    try:
        ui.wait_for("Sillage UI: connected", timeout=60)
        window = _xdotool(env, "search", "--sync", "--onlyvisible", "--name", "latent map")
        wid = window.split()[0]
        geometry = dict(
            line.split("=") for line in _xdotool(env, "getwindowgeometry", "--shell", wid).split()
        )
        left, top = int(geometry["X"]), int(geometry["Y"])
        width, height = int(geometry["WIDTH"]), int(geometry["HEIGHT"])
        row = top + height // 2

        # A drag ending left of centre, then one ending right of it: the engine follows both.
        _drag_to(env, left + width // 4, row, left + int(width * 0.35), row)
        first = _take_until(link, woken, "xy", lambda v: v["xy"] is not None)
        _drag_to(env, left + int(width * 0.35), row, left + int(width * 0.6), row)
        m = LatentMap.load(model_and_map[1])

        def plays_the_point(v: dict) -> bool:  # what the map holds at the dragged-to point
            return v["xy"][0] > first["xy"][0] + 0.05 and bool(
                np.allclose(v["latent"], m.to_latent(*v["xy"]), atol=0.05)
            )

        second = _take_until(link, woken, "xy", plays_the_point)
        assert not np.allclose(first["latent"], second["latent"], atol=1e-3)

        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / ".gitignore").write_text("*\n")
        shot = ARTIFACTS / "ui-xvfb.png"
        grab = (
            "import sys\nfrom PySide6.QtGui import QGuiApplication\n"
            "app = QGuiApplication([])\n"
            "sys.exit(0 if app.primaryScreen().grabWindow(0).save(sys.argv[1]) else 1)\n"
        )
        subprocess.run([sys.executable, "-c", grab, str(shot)], env=env, check=True, timeout=60)
        from PySide6.QtGui import QImage

        image = QImage(str(shot))
        assert (image.width(), image.height()) == (1280, 800)
        # The window is on the screen: many colours where an empty X screen has one.
        small = image.scaled(160, 100)
        colours = {small.pixel(x, y) for x in range(160) for y in range(100)}
        assert len(colours) > 20, len(colours)
    finally:
        link.close()
        ui.stop()

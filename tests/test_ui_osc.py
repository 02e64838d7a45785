"""UI ↔ engine over OSC, with a python-osc stand-in for the engine (real sockets, 127.0.0.1).

Every wait is on an event (a message in a queue, a condition checked while Qt processes its
events), bounded by a timeout; nothing sleeps.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from mappings.latentmap import LatentMap
from ui.demo import demo_map
from ui.link import EngineLink, parse_hostport

TIMEOUT_S = 10.0


class FakeEngine:
    """Records what the UI sends; sends state to whoever subscribed."""

    def __init__(self) -> None:
        self.received: queue.Queue[tuple[str, tuple[Any, ...]]] = queue.Queue()
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(lambda address, *args: self.received.put((address, args)))
        self.server = BlockingOSCUDPServer(("127.0.0.1", 0), dispatcher)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.client: SimpleUDPClient | None = None

    def expect(self, address: str, timeout: float = TIMEOUT_S) -> tuple[Any, ...]:
        """The arguments of the next message to ``address`` (others are skipped)."""
        from PySide6 import QtCore

        # Qt runs the window's side meanwhile (queued signals, timers), as its event loop would.
        pump = QtCore.QCoreApplication.instance() is not None
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if pump:
                QtCore.QCoreApplication.processEvents(
                    QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 10
                )
            try:
                got, args = self.received.get(timeout=min(left, 0.02) if pump else left)
            except queue.Empty:
                continue
            if got == address:
                return args
        raise AssertionError(f"no {address} from the UI within {timeout} s")

    def send(self, address: str, *args: Any) -> None:
        assert self.client is not None, "nobody subscribed"
        self.client.send_message(address, list(args))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.client is not None:
            self.client.close()


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT_S) -> None:
    """Let Qt process events until ``condition()`` holds."""
    from PySide6 import QtCore

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        QtCore.QCoreApplication.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)


@pytest.fixture()
def app() -> Any:
    from PySide6 import QtWidgets

    return QtWidgets.QApplication.instance() or QtWidgets.QApplication([])


@pytest.fixture()
def engine() -> Iterator[FakeEngine]:
    fake = FakeEngine()
    yield fake
    fake.close()


@pytest.fixture()
def map_path(tmp_path: Path) -> Path:
    m = demo_map(500, latent_size=6)
    m.labels = {"breath": (0.25, 0.75)}
    path = tmp_path / "map.npz"
    m.save(path)
    return path


def test_parse_hostport() -> None:
    assert parse_hostport("10.0.0.2:9000") == ("10.0.0.2", 9000)
    assert parse_hostport("studio.local") == ("studio.local", 7770)
    assert parse_hostport(":7000") == ("127.0.0.1", 7000)
    with pytest.raises(ValueError, match="not a number"):
        parse_hostport("host:abc")


def test_round_trip(app: Any, engine: FakeEngine, map_path: Path) -> None:
    from PySide6 import QtCore
    from PySide6.QtTest import QTest

    from ui.window import MainWindow

    latent_map = LatentMap.load(map_path)
    link = EngineLink(("127.0.0.1", engine.port), listen_port=0, listen_host="127.0.0.1")
    window = MainWindow(latent_map, map_path, link)
    window.resize(800, 600)
    window.show()
    link.start()
    try:
        # The UI subscribes with its listen port; the engine answers with state.
        (port,) = engine.expect("/sillage/subscribe")
        assert port == link.listen_port
        engine.client = SimpleUDPClient("127.0.0.1", port)
        engine.send("/sillage/state/model", "tiny", 48000, 64, 6)
        engine.send("/sillage/state/underruns", 0)
        engine.send("/sillage/state/level", -12.0, -3.0)
        engine.send("/sillage/state/latency_ms", 9.5, 1.3, 5.3, 5.3, 0.0, 0.0)
        engine.send("/sillage/state/decode_ms", 1.1, 2.4)
        engine.send("/sillage/state/xy", 0.2, 0.8)
        wait_until(lambda: window.view.cursor_xy() == pytest.approx((0.2, 0.8)))
        wait_until(lambda: "tiny" in window.status.model.text())
        assert "connected" in window.status.connection.text()
        assert "9.5 ms" in window.status.latency.text()
        assert window.status.meter.rms_db == -12.0
        assert "built for demo, engine plays tiny" in window.status.warning.text()
        engine.send("/sillage/state/error", "/sillage/xy needs a map")
        wait_until(lambda: "needs a map" in window.status.error.text())

        # On first contact the UI announces the labels saved with its map.
        name, x, y = engine.expect("/sillage/label")
        assert (name, x, y) == ("breath", pytest.approx(0.25), pytest.approx(0.75))

        # The played latent is placed with the UI's own map.
        engine.send("/sillage/state/latent", *map(float, latent_map.latents[5]))
        wait_until(
            lambda: window.view.cursor_xy() == pytest.approx(tuple(latent_map.xy[5]), abs=1e-5)
        )

        # A click on the map plays: /sillage/xy with the clicked map position.
        vb = window.view.viewbox
        target = vb.mapViewToScene(QtCore.QPointF(0.3, 0.6))
        QTest.mouseClick(
            window.view.viewport(),
            QtCore.Qt.MouseButton.LeftButton,
            QtCore.Qt.KeyboardModifier.NoModifier,
            window.view.mapFromScene(target),
        )
        x, y = engine.expect("/sillage/xy")
        assert x == pytest.approx(0.3, abs=0.01) and y == pytest.approx(0.6, abs=0.01)

        # Dragging plays continuously: /sillage/xy along the way (pyqtgraph rate-limits mouse
        # moves to 100 Hz, so a fast synthetic drag yields a few), ending where the drag ends.
        _drag(window, (0.2, 0.2), (0.8, 0.5), steps=10)
        along = [engine.expect("/sillage/xy"), engine.expect("/sillage/xy")]
        assert all(0.19 <= x <= 0.81 and 0.19 <= y <= 0.51 for x, y in along)
        assert along[-1] == (pytest.approx(0.8, abs=0.01), pytest.approx(0.5, abs=0.01))
        # With an engine connected, the cursor shows what plays (the engine's state), the
        # touch ring where the finger is.
        touch = window.view.touch.data[0]
        assert (touch["x"], touch["y"]) == pytest.approx((0.8, 0.5), abs=0.01)
        assert window.view.cursor_xy() != pytest.approx((0.8, 0.5), abs=0.01)
        engine.send("/sillage/state/xy", 0.8, 0.5)
        wait_until(lambda: window.view.cursor_xy() == pytest.approx((0.8, 0.5), abs=0.01))

        # Labels made here are announced and saved with the map.
        window.view.set_label("grain", 0.6, 0.4)
        assert engine.expect("/sillage/label") == ("grain", pytest.approx(0.6), pytest.approx(0.4))
        wait_until(lambda: "grain" in LatentMap.load(map_path).labels)

        # Labels from elsewhere (another UI, a Max patch) appear; deletions remove them.
        engine.send("/sillage/state/label", "kick", 0.1, 0.9)
        engine.send("/sillage/state/label/delete", "breath")
        wait_until(lambda: "kick" in window.view.labels and "breath" not in window.view.labels)
        window.view.remove_label("grain")
        assert engine.expect("/sillage/label/delete") == ("grain",)
        wait_until(lambda: set(LatentMap.load(map_path).labels) == {"kick"})

        # Renaming is a delete and a create for every peer.
        window.view.rename("label", "kick", "kick drum")
        assert engine.expect("/sillage/label/delete") == ("kick",)
        assert engine.expect("/sillage/label")[0] == "kick drum"

        # Regions are saved with the map; regions from the engine are shown.
        window.view.set_region("calm", (0.1, 0.1, 0.3, 0.2))
        wait_until(lambda: "calm" in LatentMap.load(map_path).regions)
        assert LatentMap.load(map_path).regions["calm"] == pytest.approx((0.1, 0.1, 0.3, 0.2))
        engine.send("/sillage/state/region", "storm", 0.6, 0.6, 0.9, 0.95)
        wait_until(lambda: "storm" in window.view.regions)
        engine.send("/sillage/state/region/delete", "storm")
        wait_until(lambda: "storm" not in window.view.regions)

        # Regression examples are drawn where their latents fall on the map.
        engine.send("/sillage/state/example", 0, *map(float, latent_map.latents[7]))
        wait_until(lambda: len(window.view.examples.data) == 1)
        pos = window.view.examples.data[0]
        assert (pos["x"], pos["y"]) == pytest.approx(tuple(latent_map.xy[7]), abs=1e-5)
    finally:
        window.close()
    assert engine.expect("/sillage/unsubscribe") == (port,)


def _drag(window: Any, start: tuple[float, float], end: tuple[float, float], steps: int) -> None:
    """A left-button drag on the map, as mouse events on the view's viewport."""
    from PySide6 import QtCore, QtGui, QtWidgets

    viewport = window.view.viewport()

    def at(x: float, y: float) -> QtCore.QPointF:
        scene = window.view.viewbox.mapViewToScene(QtCore.QPointF(x, y))
        return QtCore.QPointF(window.view.mapFromScene(scene))

    def send(kind: QtCore.QEvent.Type, pos: QtCore.QPointF, button: Any, buttons: Any) -> None:
        event = QtGui.QMouseEvent(
            kind,
            pos,
            viewport.mapToGlobal(pos),
            button,
            buttons,
            QtCore.Qt.KeyboardModifier.NoModifier,
        )
        QtWidgets.QApplication.sendEvent(viewport, event)

    left, none = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.MouseButton.NoButton
    send(QtCore.QEvent.Type.MouseButtonPress, at(*start), left, left)
    for t in np.linspace(0.0, 1.0, steps + 1)[1:]:
        x, y = (1 - t) * np.array(start) + t * np.array(end)
        send(QtCore.QEvent.Type.MouseMove, at(x, y), none, left)
    send(QtCore.QEvent.Type.MouseButtonRelease, at(*end), left, none)


def test_hover_names_the_sound(app: Any, map_path: Path) -> None:
    from PySide6 import QtCore

    from ui.window import MainWindow

    m = LatentMap.load(map_path)
    window = MainWindow(m, None, None)
    try:
        i = 42
        scene = window.view.viewbox.mapViewToScene(QtCore.QPointF(*map(float, m.xy[i])))
        window.view.scene().sigMouseMoved.emit(scene)
        text = window.status.hover.text()
        assert m.source_files[int(m.source_index[i])] in text  # type: ignore[index]
        assert f"{float(m.time_s[i]):.2f} s" in text  # type: ignore[index]
    finally:
        window.close()


def test_labels_are_announced_again_after_an_outage(
    app: Any, engine: FakeEngine, map_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ui.status
    from ui.window import MainWindow

    monkeypatch.setattr(ui.status, "STALE_S", 0.3)  # an engine silent this long is gone
    link = EngineLink(("127.0.0.1", engine.port), listen_port=0, listen_host="127.0.0.1")
    window = MainWindow(LatentMap.load(map_path), None, link)
    link.start()
    try:
        (port,) = engine.expect("/sillage/subscribe")
        engine.client = SimpleUDPClient("127.0.0.1", port)
        engine.send("/sillage/state/underruns", 0)
        assert engine.expect("/sillage/label")[0] == "breath"
        wait_until(lambda: not window.status.alive())  # the engine went quiet (restarted)
        engine.send("/sillage/state/underruns", 0)
        assert engine.expect("/sillage/label")[0] == "breath"  # told again
    finally:
        window.close()


def test_regions_stay_playable(app: Any, map_path: Path) -> None:
    from PySide6 import QtCore
    from PySide6.QtTest import QTest

    from ui.window import MainWindow

    window = MainWindow(LatentMap.load(map_path), None, None)
    window.resize(800, 600)
    window.show()
    played: list[tuple[float, float]] = []
    window.view.played.connect(lambda x, y: played.append((x, y)))
    try:
        window.view.set_region("calm", (0.1, 0.1, 0.6, 0.6))
        scene = window.view.viewbox.mapViewToScene(QtCore.QPointF(0.3, 0.4))
        QTest.mouseClick(
            window.view.viewport(),
            QtCore.Qt.MouseButton.LeftButton,
            QtCore.Qt.KeyboardModifier.NoModifier,
            window.view.mapFromScene(scene),
        )
        wait_until(lambda: bool(played))
        assert played[-1] == (pytest.approx(0.3, abs=0.01), pytest.approx(0.4, abs=0.01))
        # Dragging inside a region plays too (regions move by their corner handle).
        _drag(window, (0.2, 0.2), (0.5, 0.5), steps=10)
        wait_until(
            lambda: played[-1] == (pytest.approx(0.5, abs=0.01), pytest.approx(0.5, abs=0.01))
        )
        assert window.view.region_boxes()["calm"] == pytest.approx((0.1, 0.1, 0.6, 0.6))
    finally:
        window.close()


def test_send_latent_mode(app: Any, engine: FakeEngine, map_path: Path) -> None:
    from ui.window import MainWindow

    latent_map = LatentMap.load(map_path)
    link = EngineLink(("127.0.0.1", engine.port), listen_port=0, listen_host="127.0.0.1")
    window = MainWindow(latent_map, None, link, send="latent")
    try:
        window.view.play(*latent_map.xy[3])
        z = engine.expect("/sillage/latent")
        np.testing.assert_allclose(z, latent_map.latents[3], rtol=1e-6)
    finally:
        window.close()


def test_auto_sends_latent_to_an_engine_without_a_map(
    app: Any, engine: FakeEngine, map_path: Path
) -> None:
    from ui.window import MainWindow

    latent_map = LatentMap.load(map_path)
    link = EngineLink(("127.0.0.1", engine.port), listen_port=0, listen_host="127.0.0.1")
    window = MainWindow(latent_map, None, link)  # send="auto"
    link.start()
    try:
        (port,) = engine.expect("/sillage/subscribe")
        engine.client = SimpleUDPClient("127.0.0.1", port)
        window.view.play(0.5, 0.5)  # nothing known yet: the contract's /sillage/xy
        engine.expect("/sillage/xy")

        def latents_only() -> bool:  # an engine with no map sends no state/xy
            engine.send("/sillage/state/latent", *map(float, latent_map.latents[0]))
            return window.engine_has_map() is False

        wait_until(latents_only)
        window.view.play(*map(float, latent_map.xy[9]))
        np.testing.assert_allclose(
            engine.expect("/sillage/latent"), latent_map.latents[9], rtol=1e-6
        )
    finally:
        window.close()


def test_burst_of_state_is_coalesced(engine: FakeEngine) -> None:
    # A burst wakes the GUI once until it takes the values: repaint is decoupled from OSC.
    woken = threading.Event()
    calls: list[int] = []

    def notify() -> None:
        calls.append(1)
        woken.set()

    link = EngineLink(("127.0.0.1", engine.port), listen_port=0, listen_host="127.0.0.1",
                      notify=notify)  # fmt: skip
    link.start()
    try:
        (port,) = engine.expect("/sillage/subscribe")
        engine.client = SimpleUDPClient("127.0.0.1", port)
        n = 300
        for i in range(n):
            engine.send("/sillage/state/xy", i / n, 0.5)
        # The last value may be dropped by a full socket buffer (UDP): repeat it until seen.
        deadline = time.monotonic() + TIMEOUT_S
        latest: dict[str, Any] = {}
        while latest.get("underruns") != 3 and time.monotonic() < deadline:
            engine.send("/sillage/state/underruns", 3)
            woken.wait(0.5)
            woken.clear()
            latest.update(link.take().values)
        assert latest.get("underruns") == 3
        assert "xy" in latest
        assert len(calls) < n / 2  # far fewer wake-ups than messages
    finally:
        link.close()


def test_app_process_subscribes_and_leaves_cleanly(engine: FakeEngine, map_path: Path) -> None:
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    cmd = [sys.executable, "-m", "ui", "--engine", f"127.0.0.1:{engine.port}", "--listen", "0",
           "--map", str(map_path)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL)
    try:
        (port,) = engine.expect("/sillage/subscribe", timeout=30)
        engine.client = SimpleUDPClient("127.0.0.1", port)
        engine.send("/sillage/state/underruns", 0)
        assert engine.expect("/sillage/label")[0] == "breath"  # it heard us: connected
        proc.send_signal(signal.SIGTERM)  # closes the window: labels saved, unsubscribed
        assert engine.expect("/sillage/unsubscribe") == (port,)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

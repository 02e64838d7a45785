"""The map shows the artist's loop: tagged moments at their place, training progress in the
status bar, and a region turned into a dataset from its context menu (real OSC, offscreen)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pythonosc.udp_client import SimpleUDPClient

from mappings.latentmap import LatentMap
from tests.test_ui_osc import FakeEngine, app, engine, map_path, wait_until  # noqa: F401
from ui.link import EngineLink


def test_tags_progress_and_region_dataset(app: Any, engine: FakeEngine, map_path: Path) -> None:  # noqa: F811
    from ui.window import MainWindow

    link = EngineLink(("127.0.0.1", engine.port), listen_port=0, listen_host="127.0.0.1")
    window = MainWindow(LatentMap.load(map_path), map_path, link)
    window.resize(800, 600)
    window.show()
    link.start()
    try:
        (port,) = engine.expect("/sillage/subscribe")
        engine.client = SimpleUDPClient("127.0.0.1", port)
        engine.send("/sillage/state/tag", "keep", 0.3, 0.6)
        wait_until(lambda: len(window.view.tags) == 1)
        tag = window.view.tags[0]
        assert abs(tag.pos().x() - 0.3) < 1e-6 and abs(tag.pos().y() - 0.6) < 1e-6
        assert "keep" in tag.toPlainText()

        engine.send("/sillage/state/train", "train", 120, 1.5, 2.4, "breath-v1.ts")
        wait_until(lambda: "step 120" in window.status.currentMessage())
        assert "2.4 min left" in window.status.currentMessage()
        engine.send("/sillage/state/train", "done", 0, -1.0, 0.0, "/m/breath-v1.ts")
        wait_until(lambda: "trained: /m/breath-v1.ts" in window.status.currentMessage())

        # The region's context menu asks the engine for a dataset of that region.
        window.view.set_region("breath", (0.1, 0.1, 0.4, 0.4))
        window.view.dataset_requested.emit("breath")
        assert engine.expect("/sillage/dataset/region") == ("breath", "breath")
        engine.send("/sillage/state/dataset", "breath", "datasets/breath", "3 segments")
        wait_until(lambda: "dataset breath written" in window.status.currentMessage())
    finally:
        window.close()
        link.close()


def test_the_status_bar_shows_the_prebuffer_and_why_it_changed(
    app: Any,  # noqa: F811
    engine: FakeEngine,  # noqa: F811
    map_path: Path,  # noqa: F811
) -> None:
    from ui.window import MainWindow

    link = EngineLink(("127.0.0.1", engine.port), listen_port=0, listen_host="127.0.0.1")
    window = MainWindow(LatentMap.load(map_path), map_path, link)
    window.show()
    link.start()
    try:
        (port,) = engine.expect("/sillage/subscribe")
        engine.client = SimpleUDPClient("127.0.0.1", port)
        note = "256 → 512 frames (10.7 ms): after an underrun"
        engine.send("/sillage/state/prebuffer", 512, 10.67, 1, note)
        wait_until(lambda: window.status.prebuffer.text() == "prebuffer: 512 (10.7 ms) auto")
        assert window.status.prebuffer.toolTip() == note
    finally:
        window.close()
        link.close()

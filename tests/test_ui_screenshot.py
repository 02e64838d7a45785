"""``python -m ui --screenshot`` renders the map, the cursor and the labels offscreen."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ui.demo import demo_map
from ui.view import CURSOR_COLOUR, LABEL_COLOUR, REGION_COLOUR

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"


def _shot(tmp_path: Path, name: str, *extra: str) -> np.ndarray:
    out = tmp_path / f"{name}.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    cmd = [sys.executable, "-W", "error", "-m", "ui", "--screenshot", str(out), *extra]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n")  # artifacts stay out of git
    shutil.copy(out, ARTIFACTS / f"ui-{name}.png")
    return _pixels(out)


def _pixels(path: Path) -> np.ndarray:
    from PySide6 import QtGui

    image = QtGui.QImage(str(path)).convertToFormat(QtGui.QImage.Format.Format_RGB888)
    assert not image.isNull(), f"unreadable {path}"
    w, h, stride = image.width(), image.height(), image.bytesPerLine()
    raw = np.frombuffer(image.constBits(), np.uint8, count=stride * h)
    return raw.reshape(h, stride)[:, : 3 * w].reshape(h, w, 3).copy()


def _count(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 6) -> int:
    return int((np.abs(img.astype(int) - rgb).max(axis=2) <= tol).sum())


@pytest.fixture(scope="module")
def labelled_map(tmp_path_factory: pytest.TempPathFactory) -> Path:
    m = demo_map(3000)
    m.labels = {"breath": (0.25, 0.7), "grain": (0.75, 0.3)}
    m.regions = {"calm": (0.05, 0.05, 0.3, 0.25)}
    path = tmp_path_factory.mktemp("map") / "labelled.npz"
    m.save(path)
    return path


def test_screenshot_shows_map_cursor_and_labels(labelled_map: Path, tmp_path: Path) -> None:
    img = _shot(tmp_path, "screenshot", "--map", str(labelled_map))
    assert img.shape[0] >= 600 and img.shape[1] >= 1000
    dark = img.max(axis=2) < 30
    assert dark.mean() > 0.5, "the map background should be dark"
    coloured = (img.max(axis=2) - img.min(axis=2)) > 60
    assert coloured.sum() > 5000, "corpus points missing"
    assert _count(img, CURSOR_COLOUR) > 150, "cursor missing"
    assert _count(img, LABEL_COLOUR) > 60, "labels missing"
    assert _count(img, REGION_COLOUR) > 200, "region outline missing"

    plain = demo_map(3000)
    plain_path = tmp_path / "plain.npz"
    plain.save(plain_path)
    control = _shot(tmp_path, "no-labels", "--map", str(plain_path))
    assert _count(control, LABEL_COLOUR) < 10 and _count(control, REGION_COLOUR) < 10


def test_projection_screenshot_has_a_large_cursor(labelled_map: Path, tmp_path: Path) -> None:
    normal = _shot(tmp_path, "normal", "--map", str(labelled_map))
    big = _shot(tmp_path, "projection", "--map", str(labelled_map), "--projection")
    assert _count(big, CURSOR_COLOUR) > 4 * _count(normal, CURSOR_COLOUR)
    # No chrome: the light toolbar and status bar are gone, the frame is dark edge to edge.
    assert big[:20].max(axis=2).mean() < 40 and big[-20:].max(axis=2).mean() < 40

"""Imports point inward: models/ knows no audio/OSC/Qt, mappings/ is numpy only, the engine
never imports ui/ or Qt, and nothing inner imports an outer layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

FORBIDDEN = {
    "models": {
        "instrument",
        "mappings",
        "ui",
        "sounddevice",
        "rtmixer",
        "pythonosc",
        "PySide6",
        "pyqtgraph",
        "mido",
        "rtmidi",
    },
    "mappings": {
        "instrument",
        "models",
        "ui",
        "torch",
        "sounddevice",
        "rtmixer",
        "pythonosc",
        "PySide6",
        "pyqtgraph",
        "socket",
    },
    "instrument": {"ui", "PySide6", "pyqtgraph", "umap"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_inward(layer: str) -> None:
    bad = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        if layer == "instrument" and path.name == "handtracker.py":
            continue  # its own process, its own venv (mediapipe); never imported by the engine
        hits = _imports(path) & FORBIDDEN[layer]
        if hits:
            bad.append(f"{path.relative_to(ROOT)}: {sorted(hits)}")
    assert not bad, "\n".join(bad)

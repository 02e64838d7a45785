"""The UI is the outermost layer: nothing imports it, and it reaches the engine only by OSC."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_inner_layer_imports_ui() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for layer in ("instrument", "mappings", "models")
        for path in sorted((ROOT / layer).rglob("*.py"))
        for name in _imports(path)
        if name == "ui" or name.startswith("ui.")
    ]
    assert not offenders, "the engine side must not import the UI:\n" + "\n".join(offenders)


def test_ui_reaches_the_engine_only_through_the_protocol_table() -> None:
    # ui/ may use the address table (pure data); the engine itself is a separate process.
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / "ui").rglob("*.py"))
        for name in _imports(path)
        if (name == "instrument" or name.startswith("instrument."))
        and name != "instrument.protocol"
    ]
    assert not offenders, "\n".join(offenders)


def test_the_window_starts_without_torch_or_umap() -> None:
    # Opening the map must not pay for torch (~2 s) or umap's numba compile.
    code = (
        "import sys, ui.app, ui.window, ui.map, ui.link; "
        "bad = [m for m in ('torch', 'umap', 'numba') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    env = {"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr

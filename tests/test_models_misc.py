"""Corpus determinism, layering of models/, and the tiny model in Sillage's runtime."""

import ast
import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from models import corpus

pytestmark = pytest.mark.filterwarnings(
    r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning"
)

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
FORBIDDEN = (
    "instrument",
    "mappings",
    "ui",
    "sounddevice",
    "rtmixer",
    "pythonosc",
    "mido",
    "PySide6",
    "pyqtgraph",
    "jack",
)


def test_models_imports_no_outer_layer_or_device_package() -> None:
    for path in MODELS_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


def test_models_package_import_is_light() -> None:
    import subprocess
    import sys

    code = "import sys, models; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=MODELS_DIR.parent,
        check=True,
    )
    assert out.stdout.strip() == "False"


def test_corpus_is_deterministic_and_varied(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(corpus, "FILE_SECONDS", 1.5)
    a = corpus.write_corpus(tmp_path / "a", seed=7, minutes=0.1)
    b = corpus.write_corpus(tmp_path / "b", seed=7, minutes=0.1)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in a]
    assert digest == [hashlib.sha256(p.read_bytes()).hexdigest() for p in b]
    other = corpus.render_file(np.random.default_rng([8, 0]), "pluck", seconds=1.5)
    assert not np.allclose(other, sf.read(a[0], dtype="float32")[0], atol=1e-3)
    holdout = [p for p in a if p.parent.name == "holdout"]
    assert {p.stem.split("_")[-1] for p in holdout} == {*corpus.FAMILIES, "mixed"}
    for p in a:
        audio, sr = sf.read(p)
        assert sr == 48000 and audio.ndim == 1
        assert np.sqrt(np.mean(audio**2)) > 0.005 and np.abs(audio).max() <= 0.96


def test_every_family_renders_finite_non_silent_audio() -> None:
    rng = np.random.default_rng(0)
    for name, fn in corpus.FAMILIES.items():
        y = fn(rng, 0.5)
        assert np.isfinite(y).all() and np.abs(y).max() > 1e-3, name


def test_tiny_model_loads_in_sillage_runtime(tmp_path: Path) -> None:
    runtime = pytest.importorskip("instrument.engine.runtime")
    from models.testing import make_tiny_model

    path = make_tiny_model(tmp_path / "tiny.ts", latent_size=6, ratio=128)
    rt = runtime.ModelRuntime(path, threads=1)
    assert (rt.info.latent_size, rt.info.ratio, rt.info.samplerate) == (6, 128, 48000)
    assert rt.info.delay_samples == 0
    y = rt.decode(np.full((6, 3), 1.0, np.float32))
    assert y.shape == (1, 384) and np.abs(y).max() > 1e-3

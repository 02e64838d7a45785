"""Shared fixtures: scripted nn~-interface models, written once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def one_torch_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core machine: more torch threads only contend."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def mono_model(model_dir: Path) -> Path:
    from tests.modelfixtures import osc_model

    return osc_model(model_dir / "osc-mono.ts", latent_size=4, ratio=64, channels=1)


@pytest.fixture(scope="session")
def stereo_model(model_dir: Path) -> Path:
    from tests.modelfixtures import osc_model

    return osc_model(model_dir / "osc-stereo.ts", latent_size=4, ratio=128, channels=2)

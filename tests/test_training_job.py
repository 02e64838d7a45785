"""The fine-tune job the instrument starts on /sillage/train: train → versioned export → map.

Real child processes (models.train, models.export, ui.map) on a tiny model for a few seconds.
"""

from __future__ import annotations

import json
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from instrument.training import TrainingError, train_job, versions
from models.testing import make_tiny_model


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[Path, Path]:
    parent = make_tiny_model(tmp_path / "parent.ts", latent_size=4, ratio=64)
    data = tmp_path / "dataset"
    data.mkdir()
    t = np.arange(48000 * 2) / 48000
    sf.write(data / "a.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 48000)
    (data / "manifest.jsonl").write_text(json.dumps({"file": "a.wav"}) + "\n")
    return parent, data


def test_two_jobs_make_two_versions_with_lineage(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parent, data = setup
    user, runs = tmp_path / "user", tmp_path / "runs"
    first = train_job(data, name="breath", minutes=0.05, parent=parent, threads=1,
                      user_dir=user, map_method="pca", runs=runs, poll_s=0.2)  # fmt: skip
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    phases = [line["phase"] for line in lines]
    assert phases[0] == "train" and phases[-3:] == ["export", "map", "done"]
    assert any(line["phase"] == "train" and line["step"] for line in lines)
    assert Path(first["model"]).name == "breath-v1.ts" and Path(first["map"]).is_file()
    card = tomllib.loads((user / "breath-v1.toml").read_text())
    assert card["lineage"]["parent"] == str(parent)
    assert card["lineage"]["dataset_manifest_rows"] == 1
    assert card["lineage"]["train"].startswith("python -m models.train ")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript: the nn~ format
        model = torch.jit.load(first["model"])
    audio = model.decode(torch.zeros(1, 4, 8))
    assert audio.shape == (1, 1, 8 * 64) and torch.isfinite(audio).all()

    before = (user / "breath-v1.ts").read_bytes()
    second = train_job(data, name="breath", minutes=0.05, parent=Path(first["model"]),
                       threads=1, user_dir=user, map_method="none", runs=runs, poll_s=0.2)  # fmt: skip
    assert Path(second["model"]).name == "breath-v2.ts" and second["map"] is None
    assert (user / "breath-v1.ts").read_bytes() == before  # no version is overwritten
    assert [p.name for p in versions(user, "breath")] == ["breath-v1.ts", "breath-v2.ts"]
    card2 = tomllib.loads((user / "breath-v2.toml").read_text())
    assert card2["lineage"]["parent"] == first["model"]


def test_bad_requests_are_refused_before_any_work(setup: tuple[Path, Path], tmp_path: Path) -> None:
    parent, data = setup
    user, runs = tmp_path / "user", tmp_path / "runs"
    kw = {"parent": parent, "user_dir": user, "runs": runs, "map_method": "none"}
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TrainingError, match=r"no audio files.*models\.dataset"):
        train_job(empty, name="x", minutes=0.05, **kw)  # type: ignore[arg-type]
    with pytest.raises(TrainingError, match=r"model name '\.\./evil'"):
        train_job(data, name="../evil", minutes=0.05, **kw)  # type: ignore[arg-type]
    with pytest.raises(TrainingError, match="not found"):
        train_job(data, name="x", minutes=0.05, **(kw | {"parent": tmp_path / "no.ts"}))  # type: ignore[arg-type]
    assert not runs.exists() and not user.exists()
    # A training crash (a parent that is not a model) is reported with the trainer's words.
    corrupt = tmp_path / "corrupt.ts"
    corrupt.write_bytes(b"not a model")
    with pytest.raises(TrainingError, match="training failed"):
        train_job(data, name="x", minutes=0.05, **(kw | {"parent": corrupt}))  # type: ignore[arg-type]
    assert versions(user) == []

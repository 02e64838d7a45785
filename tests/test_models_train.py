"""Training CLI and loop: loss drops, errors are clear, resume / Ctrl-C / fine-tune work."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from models.config import make_config
from models.data import AudioDataset
from models.errors import (
    EmptyDatasetError,
    NoReadableAudioError,
    UnsupportedSampleRateError,
)
from models.train import Trainer, main

pytestmark = [
    pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning"),
    pytest.mark.usefixtures("one_torch_thread"),
]


def _tones(folder: Path, n_files: int = 2, seconds: float = 1.5, sr: int = 48000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n_files):
        f = 220.0 * (i + 1)
        y = 0.3 * np.sin(2 * np.pi * f * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t))
        sf.write(folder / f"tone{i}.wav", y.astype(np.float32), sr)
    return folder


def test_tiny_model_loss_drops(tmp_path: Path) -> None:
    cfg = make_config("tiny", learning_rate=3e-3)
    data = AudioDataset.from_folder(
        _tones(tmp_path / "audio"),
        samplerate=48000,
        channels=1,
        n_samples=cfg.n_samples,
        verbose=False,
    )
    trainer = Trainer(cfg, data, tmp_path / "run", device=torch.device("cpu"), dist=_dist())
    trainer.total_steps = 40
    losses = [trainer.train_step()["mss"] for _ in range(40)]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses


def _dist():
    from models.train import Dist

    return Dist()


def test_cli_trains_checkpoints_previews_and_resumes(tmp_path: Path) -> None:
    audio, run = _tones(tmp_path / "audio"), tmp_path / "run"
    main([str(audio), "--out", str(run), "--config", "tiny", "--steps", "12", "--no-progress"])
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert state["step"] == 12
    assert json.loads((run / "config.json").read_text())["latent_size"] == 4
    assert (run / "previews" / "original.wav").is_file()
    assert (run / "previews" / "step_0000012.wav").is_file()
    assert (run / "log.jsonl").read_text().count("\n") >= 1
    main([str(audio), "--out", str(run), "--resume", "--steps", "15", "--no-progress"])
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert state["step"] == 15
    assert state["command"].count("python -m models.train") == 2 and "--resume" in state["command"]


def test_existing_run_without_resume_is_refused(tmp_path: Path, capsys) -> None:
    audio, run = _tones(tmp_path / "audio"), tmp_path / "run"
    main([str(audio), "--out", str(run), "--config", "tiny", "--steps", "2", "--no-progress"])
    with pytest.raises(SystemExit) as exc:
        main([str(audio), "--out", str(run), "--config", "tiny", "--steps", "2"])
    assert exc.value.code == 1
    assert "--resume" in capsys.readouterr().err


def test_ctrl_c_leaves_resumable_checkpoint(tmp_path: Path, monkeypatch) -> None:
    audio, run = _tones(tmp_path / "audio"), tmp_path / "run"
    real_step = Trainer.train_step

    def step_then_interrupt(self: Trainer) -> dict[str, float]:
        if self.step == 5:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", step_then_interrupt)
    with pytest.raises(SystemExit) as exc:
        main([str(audio), "--out", str(run), "--config", "tiny", "--steps", "50", "--no-progress"])
    assert exc.value.code == 130
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 5
    monkeypatch.setattr(Trainer, "train_step", real_step)
    main([str(audio), "--out", str(run), "--resume", "--steps", "7", "--no-progress"])
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 7


def test_finetune_from_exported_model(tmp_path: Path) -> None:
    from models.export import export_run, load_weights

    audio, run = _tones(tmp_path / "audio"), tmp_path / "run"
    main([str(audio), "--out", str(run), "--config", "tiny", "--steps", "3", "--no-progress"])
    ts, _ = export_run(run, tmp_path / "m.ts", streaming=True)
    cfg, weights, _ = load_weights(ts)
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    for k, v in state["model"].items():
        torch.testing.assert_close(weights[k], v, msg=k)
    ft = tmp_path / "ft"
    main([str(audio), "--out", str(ft), "--finetune", str(ts), "--steps", "4", "--no-progress"])
    ft_state = torch.load(ft / "checkpoint.pt", weights_only=False)
    assert ft_state["step"] == 4 and ft_state["base"] == str(ts)
    assert ft_state["config"]["latent_size"] == cfg.latent_size


def _run_cli(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 1
    return capsys.readouterr().err


def test_empty_folder_is_a_clear_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    err = _run_cli([str(tmp_path / "empty"), "--out", str(tmp_path / "r")], capsys)
    assert "EmptyDatasetError" in err and "no audio files" in err
    with pytest.raises(EmptyDatasetError, match="does not exist"):
        AudioDataset.from_folder(tmp_path / "nope", samplerate=48000, channels=1, n_samples=64)


def test_corrupt_files_are_skipped_and_named(tmp_path: Path, capsys) -> None:
    audio = _tones(tmp_path / "audio", n_files=1)
    (audio / "broken.wav").write_bytes(b"RIFF\x00\x00not really a wav")
    data = AudioDataset.from_folder(audio, samplerate=48000, channels=1, n_samples=4096)
    assert len(data.clips) == 1 and "broken.wav" in data.skipped[0][0]
    assert "broken.wav" in capsys.readouterr().err
    (audio / "tone0.wav").unlink()
    with pytest.raises(NoReadableAudioError, match=r"broken\.wav"):
        AudioDataset.from_folder(audio, samplerate=48000, channels=1, n_samples=4096)


def test_unsupported_rates_are_clear_errors(tmp_path: Path, capsys) -> None:
    audio = _tones(tmp_path / "audio", n_files=1)
    err = _run_cli(
        [str(audio), "--out", str(tmp_path / "r"), "--config", "tiny", "--set", "samplerate=12345"],
        capsys,
    )
    assert "UnsupportedSampleRateError" in err and "12345" in err
    low = tmp_path / "low"
    low.mkdir()
    sf.write(low / "low.wav", np.zeros(3000, np.float32), 1000)
    with pytest.raises(NoReadableAudioError, match="1000 Hz"):
        AudioDataset.from_folder(low, samplerate=48000, channels=1, n_samples=64, verbose=False)
    with pytest.raises(UnsupportedSampleRateError):
        make_config("tiny", samplerate=12345)


def test_resampling_and_channel_mixing(tmp_path: Path) -> None:
    folder = tmp_path / "a"
    folder.mkdir()
    stereo = np.random.default_rng(0).uniform(-0.1, 0.1, (22050, 2)).astype(np.float32)
    sf.write(folder / "s.flac", stereo, 22050)
    data = AudioDataset.from_folder(folder, samplerate=48000, channels=1, n_samples=1024)
    assert data.clips[0].shape == (1, 48000)
    data2 = AudioDataset.from_folder(folder, samplerate=48000, channels=2, n_samples=1024)
    assert data2.clips[0].shape == (2, 48000)


def test_adversarial_phase_runs_and_saves_discriminator(tmp_path: Path) -> None:
    audio, run = _tones(tmp_path / "audio"), tmp_path / "run"
    main(
        [
            str(audio),
            "--out",
            str(run),
            "--config",
            "tiny",
            "--steps",
            "4",
            "--no-progress",
            "--set",
            "adversarial=true",
            "--set",
            "adversarial_start=2",
        ]
    )
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert state["disc"] is not None and state["step"] == 4
    logs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert "adv" in logs[-1] and "disc" in logs[-1]
    assert all(np.isfinite(v) for v in logs[-1].values())


@pytest.mark.parametrize("fmt", ["MP3", "OGG", "FLAC"])
def test_compressed_formats_are_read_and_resampled(tmp_path: Path, fmt: str) -> None:
    folder = tmp_path / "a"
    folder.mkdir()
    x = (0.2 * np.sin(np.arange(44100) * 0.05)).astype(np.float32)
    sf.write(folder / f"x.{fmt.lower()}", x, 44100, format=fmt)
    data = AudioDataset.from_folder(folder, samplerate=48000, channels=1, n_samples=1024)
    assert abs(data.clips[0].shape[1] - 48000) < 2000
    assert np.abs(data.clips[0]).max() > 0.1


def test_finetune_refuses_architecture_change(tmp_path: Path, capsys) -> None:
    audio, run = _tones(tmp_path / "audio"), tmp_path / "run"
    main([str(audio), "--out", str(run), "--config", "tiny", "--steps", "1", "--no-progress"])
    err = _run_cli(
        [
            str(audio),
            "--out",
            str(tmp_path / "ft"),
            "--finetune",
            str(run),
            "--set",
            "capacity=4",
            "--steps",
            "1",
            "--no-progress",
        ],
        capsys,
    )
    assert "CheckpointError" in err and "architecture" in err

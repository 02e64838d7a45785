"""Train (or resume, or fine-tune) a model on a folder of audio.

``python -m models.train AUDIO_DIR --out RUN_DIR [--config NAME] [--steps N] [--resume]
[--finetune MODEL_OR_RUN]``

CPU by default, CUDA when present; several GPUs through ``torchrun`` (DDP). Writes
``RUN_DIR/checkpoint.pt`` (every ``checkpoint_every`` steps and on Ctrl-C), the resolved
``RUN_DIR/config.json`` beside it, ``RUN_DIR/log.jsonl`` (losses), and reconstructions in
``RUN_DIR/previews/`` every ``preview_every`` steps so you can listen while it trains.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch import nn

from models.config import CONFIGS, ModelConfig, make_config
from models.data import AudioDataset
from models.ddsp_train import ddsp_losses, labelled_batch, load_labels
from models.errors import CheckpointError, ModelsError
from models.export import load_weights
from models.families import build_model
from models.losses import (
    MultiScaleDiscriminator,
    discriminator_loss,
    generator_adversarial_loss,
    multiscale_spectral_distance,
)
from models.vae import VAE

PREVIEW_SECONDS = 2.0


@dataclass
class Dist:
    """Where this process sits in a (possibly single-process) DDP job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Dist:
    """Join the process group when launched by ``torchrun`` (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    return Dist(dist.get_rank(), world, local)


def _parse_overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ModelsError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Trainer:
    """One training run: model, optimisers, data, and the files it writes."""

    def __init__(
        self,
        cfg: ModelConfig,
        data: AudioDataset,
        run_dir: Path,
        *,
        device: torch.device,
        dist: Dist,
        seed: int = 0,
        command: str = "",
        base: str = "",
    ) -> None:
        self.cfg, self.data, self.run_dir = cfg, data, run_dir
        self.device, self.dist, self.command, self.base = device, dist, command, base
        torch.manual_seed(seed + dist.rank)
        self.rng = np.random.default_rng([seed, dist.rank])
        self.model: VAE = build_model(cfg).to(device)  # type: ignore[assignment]
        self.net: nn.Module = self.model
        if dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [dist.local_rank] if device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(params, lr=cfg.learning_rate)
        self.disc: MultiScaleDiscriminator | None = None
        self.disc_opt: torch.optim.Optimizer | None = None
        if cfg.adversarial:
            self.disc = MultiScaleDiscriminator(cfg.channels).to(device)
            self.disc_opt = torch.optim.Adam(self.disc.parameters(), 1e-4, betas=(0.5, 0.9))
        self.step = 0
        self.total_steps = 0
        self.base_steps = 0
        self.max_seconds: float | None = None
        self.started = time.monotonic()

    # -- state -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "format": "sillage-checkpoint/1",
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "disc": self.disc.state_dict() if self.disc else None,
            "disc_opt": self.disc_opt.state_dict() if self.disc_opt else None,
            "step": self.step,
            "base_steps": self.base_steps,
            "rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "data_summary": self.data.summary(),
            "command": self.command,
            "base": self.base,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        if self.disc is not None and state.get("disc"):
            self.disc.load_state_dict(state["disc"])
            if self.disc_opt is not None and state.get("disc_opt"):
                self.disc_opt.load_state_dict(state["disc_opt"])
        self.step = int(state["step"])
        self.base_steps = int(state.get("base_steps", 0))
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        # Keep the whole history: the card must say every command that made the weights.
        first = state.get("command", "")
        self.command = f"{first} && {self.command}" if first and self.command else first

        self.base = state.get("base", self.base)

    def fit_latent_stats(self) -> None:
        """Refit the exposed-latent PCA on a fixed sample of the data (same every time)."""
        rng = np.random.default_rng(12345)
        n = min(64, max(8, int(self.data.seconds * self.cfg.samplerate / self.cfg.n_samples)))
        x = torch.from_numpy(self.data.batch(rng, n)).to(self.device)
        was_training = self.model.training
        self.model.eval()
        self.model.fit_latent_stats(x)
        self.model.train(was_training)

    def save(self) -> None:
        if not self.dist.main:
            return
        self.fit_latent_stats()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.cfg.save(self.run_dir / "config.json")
        _save_atomic(self.state(), self.run_dir / "checkpoint.pt")

    # -- previews ----------------------------------------------------------------------------
    def preview_input(self) -> torch.Tensor:
        """Fixed clips (the loudest 2 s of up to 3 files): the same every time, to compare."""
        n = int(PREVIEW_SECONDS * self.cfg.samplerate) // self.cfg.ratio * self.cfg.ratio
        picks = np.linspace(0, len(self.data.clips) - 1, min(3, len(self.data.clips)))
        segs = []
        for k in sorted({int(i) for i in picks}):
            clip = self.data.clips[k]
            if clip.shape[1] <= n:
                seg = np.pad(clip, ((0, 0), (0, n - clip.shape[1])))
            else:
                hop = max(1, (clip.shape[1] - n) // 32)
                starts = range(0, clip.shape[1] - n + 1, hop)
                best = max(starts, key=lambda s: float(np.square(clip[:, s : s + n]).mean()))
                seg = clip[:, best : best + n]
            segs.append(seg)
        return torch.from_numpy(np.concatenate(segs, 1)[None]).to(self.device)

    def write_preview(self) -> Path | None:
        if not self.dist.main:
            return None
        folder = self.run_dir / "previews"
        folder.mkdir(parents=True, exist_ok=True)
        x = self.preview_input()
        if not (folder / "original.wav").exists():
            sf.write(folder / "original.wav", x[0].T.cpu().numpy(), self.cfg.samplerate)
        self.model.eval()
        with torch.no_grad():
            y = self.model.decode(self.model.encode(x))
        self.model.train()
        path = folder / f"step_{self.step:07d}.wav"
        sf.write(path, y[0].T.clamp(-1, 1).cpu().numpy(), self.cfg.samplerate)
        return path

    # -- loop --------------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """Constant, then a smooth decay to 20 % over the last quarter of the run.

        With a wall-time limit (``--max-minutes``) the run's progress is the larger of the
        step fraction and the time fraction, so a run stopped by the clock on a busy shared
        machine still ends its schedule with the decay.
        """
        progress = step / max(1, self.total_steps)
        if self.max_seconds:
            elapsed = time.monotonic() - self.started
            progress = max(progress, elapsed / self.max_seconds)
        if progress < 0.75:
            return self.cfg.learning_rate
        frac = min(1.0, (progress - 0.75) / 0.25)
        return self.cfg.learning_rate * (0.2 + 0.8 * 0.5 * (1 + np.cos(np.pi * frac)))

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        batch = self.data.batch(self.rng, cfg.batch_size)
        gain = 10 ** (self.rng.uniform(-6, 3, (cfg.batch_size, 1, 1)) / 20)
        x = torch.from_numpy((batch * gain).astype(np.float32)).to(self.device)
        for g in self.opt.param_groups:
            g["lr"] = self.lr_at(self.step)
        y, target, kl, _ = self.net(x)
        mss = multiscale_spectral_distance(target, y, cfg.mss_scales)
        warm = 1.0 if cfg.beta_warmup_steps <= 0 else min(1.0, self.step / cfg.beta_warmup_steps)
        beta = cfg.beta_kl * warm
        loss = mss + beta * kl
        logs = {"mss": mss.item(), "kl": kl.item(), "beta": beta}
        adversarial = self.disc is not None and self.step >= cfg.adversarial_start
        if adversarial and self.disc is not None and self.disc_opt is not None:
            real, fake = self.disc(target), self.disc(y)
            adv, fm = generator_adversarial_loss(real, fake)
            loss = loss + 0.1 * adv + 1.0 * fm
            logs.update(adv=adv.item(), fm=fm.item())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.opt.step()
        if adversarial and self.disc is not None and self.disc_opt is not None:
            d_loss = discriminator_loss(self.disc(target), self.disc(y.detach()))
            self.disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            self.disc_opt.step()
            logs["disc"] = d_loss.item()
        logs["loss"] = loss.item()
        self.step += 1
        return logs

    def run(
        self, total_steps: int, *, progress: bool = True, max_seconds: float | None = None
    ) -> None:
        """Train until ``total_steps`` (or ``max_seconds`` of wall time, then save and stop);
        Ctrl-C saves a resumable checkpoint and re-raises."""
        from tqdm import tqdm

        self.total_steps = total_steps
        self.max_seconds = max_seconds
        self.started = time.monotonic()
        cfg = self.cfg
        log_path = self.run_dir / "log.jsonl"
        bar = tqdm(
            total=total_steps,
            initial=self.step,
            disable=not (progress and self.dist.main),
            dynamic_ncols=True,
            desc="train",
        )
        t0 = time.monotonic()
        try:
            if self.step == 0 and self.dist.main:
                self.save()
                self.write_preview()
            while self.step < total_steps:
                if max_seconds is not None and time.monotonic() - t0 > max_seconds:
                    if self.dist.main:
                        print(f"\ntime limit reached at step {self.step}", file=sys.stderr)
                    break
                logs = self.train_step()
                bar.update(1)
                if self.step % 10 == 0 or self.step == total_steps:
                    bar.set_postfix(
                        loss=f"{logs['loss']:.3f}",
                        mss=f"{logs['mss']:.3f}",
                        kl=f"{logs['kl']:.1f}",
                    )
                    if self.dist.main:
                        rec = {"step": self.step, "seconds": round(time.monotonic() - t0, 2)}
                        rec.update({k: round(v, 5) for k, v in logs.items()})
                        with log_path.open("a") as f:
                            f.write(json.dumps(rec) + "\n")
                if self.step % cfg.checkpoint_every == 0:
                    self.save()
                if self.step % cfg.preview_every == 0:
                    self.write_preview()
        except KeyboardInterrupt:
            self.save()
            bar.close()
            print(
                f"\ninterrupted at step {self.step}; checkpoint saved. Resume with: "
                f"python -m models.train {shlex.quote(self.data.folder)} "
                f"--out {shlex.quote(str(self.run_dir))} --resume --steps {total_steps}",
                file=sys.stderr,
            )
            raise
        bar.close()
        self.save()
        self.write_preview()


class DDSPTrainer(Trainer):
    """:class:`Trainer` with f0-labelled batches and the DDSP losses (models.ddsp_train)."""

    model: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.labels = load_labels(
            self.data, self.cfg.ratio, self.run_dir / "f0-labels", verbose=self.dist.main
        )
        voiced = sum(float(v.sum()) for _, v in self.labels)
        total = sum(len(v) for _, v in self.labels)
        if self.dist.main:
            print(f"f0 labels: {voiced / max(total, 1):.0%} of frames voiced", file=sys.stderr)

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        s = self.model.settings
        batch, f0, voiced = labelled_batch(
            self.data, self.labels, self.rng, cfg.batch_size, cfg.ratio
        )
        gain = 10 ** (self.rng.uniform(-6, 3, (cfg.batch_size, 1, 1)) / 20)
        x = torch.from_numpy((batch * gain).astype(np.float32)).to(self.device)
        f0_t = torch.from_numpy(f0).to(self.device)
        voiced_t = torch.from_numpy(voiced).to(self.device)
        for g in self.opt.param_groups:
            g["lr"] = self.lr_at(self.step)
        out = ddsp_losses(self.model, x, f0_t, voiced_t, cfg.mss_scales)
        warm = 1.0 if cfg.beta_warmup_steps <= 0 else min(1.0, self.step / cfg.beta_warmup_steps)
        beta = cfg.beta_kl * warm
        loss = (
            out["mss"]
            + beta * out["kl"]
            + s.pitch_loss_weight * out["pitch_ce"]
            + s.voicing_loss_weight * out["voicing"]
        )
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.opt.step()
        self.step += 1
        logs = {k: float(v.item()) for k, v in out.items() if k != "y"}
        logs.update(beta=beta, loss=float(loss.item()))
        return logs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m models.train", description="Train a Sillage model on a folder of audio."
    )
    p.add_argument("audio_dir", help="folder of wav/flac/ogg/mp3 (searched recursively)")
    p.add_argument("--out", required=True, help="run directory (checkpoints, previews, logs)")
    p.add_argument("--config", default="default", choices=sorted(CONFIGS))
    p.add_argument("--steps", type=int, default=20000, help="train until this step count")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR/checkpoint.pt")
    p.add_argument(
        "--finetune",
        metavar="MODEL_OR_RUN",
        help="start from an exported .ts (e.g. models/default/sillage-default.ts) or a run dir",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value (repeatable), e.g. --set latent_size=16",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop (with a checkpoint and a preview) after this much wall time",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 …")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    raw = sys.argv[1:] if argv is None else argv
    command = "python -m models.train " + " ".join(shlex.quote(a) for a in raw)
    try:
        _main(args, command)
    except ModelsError as e:
        parser.exit(1, f"{type(e).__name__}: {e}\n")
    except KeyboardInterrupt:
        parser.exit(130)


def _main(args: argparse.Namespace, command: str) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    dist = setup_distributed()
    if args.device == "auto":
        device = torch.device(f"cuda:{dist.local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    run_dir = Path(args.out)
    overrides = _parse_overrides(args.set)
    weights: dict[str, torch.Tensor] | None = None
    resume_state: dict[str, Any] | None = None
    base = ""
    base_steps = 0
    if args.resume:
        from models.export import load_checkpoint

        resume_state = load_checkpoint(run_dir)
        cfg = ModelConfig.from_dict(resume_state["config"])
    elif args.finetune:
        cfg, weights, base_steps = load_weights(args.finetune)
        # A fine-tune keeps the architecture; it may change training settings only.
        cfg = replace(cfg, beta_warmup_steps=0, **overrides)
        base = str(args.finetune)
    else:
        if (run_dir / "checkpoint.pt").exists():
            raise CheckpointError(
                f"{run_dir} already holds a checkpoint: add --resume to continue it, or choose "
                "another --out"
            )
        cfg = make_config(args.config, **overrides)
    data = AudioDataset.from_folder(
        args.audio_dir, samplerate=cfg.samplerate, channels=cfg.channels, n_samples=cfg.n_samples
    )
    if dist.main:
        print(
            f"{len(data.clips)} file(s), {data.seconds / 60:.1f} min of audio "
            f"({len(data.skipped)} skipped); device {device}; world {dist.world}",
            file=sys.stderr,
        )
    trainer_cls = DDSPTrainer if cfg.family == "ddsp" else Trainer
    trainer = trainer_cls(
        cfg, data, run_dir, device=device, dist=dist, seed=args.seed, command=command, base=base
    )
    if resume_state is not None:
        trainer.load(resume_state)
    elif weights is not None:
        try:
            trainer.model.load_state_dict(weights)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise CheckpointError(
                f"cannot fine-tune from {args.finetune}: its weights do not fit this "
                f"architecture ({first}); --set may change training settings only"
            ) from e
        trainer.base_steps = base_steps
    max_seconds = None if args.max_minutes is None else 60.0 * args.max_minutes
    trainer.run(args.steps, progress=not args.no_progress, max_seconds=max_seconds)
    if dist.main:
        print(
            f"done: {trainer.step} steps; export with: python -m models.export {run_dir} "
            f"--out MODEL.ts --streaming",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()

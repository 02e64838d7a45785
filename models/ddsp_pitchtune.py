"""Fine-tune only the pitch network of a DDSP run on continuous pitches.

``python -m models.ddsp_pitchtune RUN_DIR AUDIO_DIR --out NEW_RUN_DIR [--minutes M]``

Why: the synthetic corpus plays notes of one pentatonic scale, so a pitch network trained on
it alone learns to snap to those notes (measured: a B2 sawtooth encoded 400 cents flat, an F3
one 100 cents flat). Here half of every batch is the labelled corpus, half random harmonic
tones at continuous pitches (log-uniform C1–C7, 1–64 harmonics with random tilt, some with
vibrato or a glide, some with noise), so the estimate follows any pitch. Only the pitch
network's weights change: the decoder, the timbre encoder and the loudness are untouched, so
held-latent sound is exactly the run's.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.data import AudioDataset
from models.ddsp import DDSP
from models.ddsp_train import PITCH_SIGMA_BINS, labelled_batch, load_labels
from models.export import load_checkpoint, model_from_checkpoint


def random_tones(
    rng: np.random.Generator, batch: int, n: int, sr: int, hop: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Harmonic tones at continuous pitches: audio (b, 1, n), f0 and voiced (b, n // hop)."""
    t = np.arange(n) / sr
    x = np.zeros((batch, 1, n), np.float32)
    f0s = np.zeros((batch, n // hop), np.float32)
    for i in range(batch):
        f_start = 32.70 * 2 ** rng.uniform(0, 6)
        f = np.full(n, f_start)
        kind = rng.random()
        if kind < 0.25:
            f = f * (1 + rng.uniform(0.002, 0.01) * np.sin(2 * np.pi * rng.uniform(4, 7) * t))
        elif kind < 0.4:
            f = f * 2 ** (rng.uniform(-0.5, 0.5) * t / t[-1])
        phase = 2 * np.pi * np.cumsum(f) / sr
        n_harm = int(rng.integers(1, 65))
        tilt = rng.uniform(0, 2.5)
        y = np.zeros(n)
        for k in range(1, n_harm + 1):
            if k * f.max() >= 0.45 * sr:
                break
            amp = k**-tilt * rng.uniform(0.3, 1.0)
            if k > 1 and rng.random() < 0.1:
                continue  # a missing partial now and then
            y += amp * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
        if rng.random() < 0.3:
            y += (
                np.sqrt(np.mean(y * y)) * 10 ** (-rng.uniform(10, 40) / 20) * rng.standard_normal(n)
            )
        y *= 10 ** (rng.uniform(-45, -6) / 20) / max(np.sqrt(np.mean(y * y)), 1e-9)
        x[i, 0] = y
        f0s[i] = f[hop - 1 : (n // hop) * hop : hop]
    return x, f0s, np.ones_like(f0s)


def pitch_loss(
    model: DDSP, x: torch.Tensor, f0: torch.Tensor, voiced: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pitch cross-entropy (soft labels, voiced frames) + voicing BCE; and the mean error in
    cents of the read-out on voiced frames."""
    pin, _, _ = model.features(x)
    logits = model.pitch_net(pin)
    v = voiced > 0.5
    label = torch.log2(f0.clamp_min(1.0) / model.pitch_ref_hz)
    centre = (label - model.pitch_bin0) * model.pitch_bins_per_octave
    bins = torch.arange(model.pitch_bins, dtype=x.dtype).view(1, -1, 1)
    target = torch.exp(-0.5 * ((bins - centre.unsqueeze(1)) / PITCH_SIGMA_BINS) ** 2)
    target = target / target.sum(1, keepdim=True).clamp_min(1e-9)
    valid = v & (centre >= 0) & (centre <= model.pitch_bins - 1)
    ce = -(target * torch.log_softmax(logits[:, : model.pitch_bins], 1)).sum(1)
    n_valid = valid.sum().clamp_min(1)
    loss = (ce * valid).sum() / n_valid
    loss = loss + 0.5 * F.binary_cross_entropy_with_logits(logits[:, -1], voiced)
    with torch.no_grad():
        est = model.pitch_from_logits(logits) / model.pitch_scale
        err = (1200 * (est - label).abs() * valid).sum() / n_valid
    return loss, err


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m models.ddsp_pitchtune", description=__doc__)
    p.add_argument("run_dir", help="a DDSP run (checkpoint.pt)")
    p.add_argument("audio_dir", help="its labelled training audio")
    p.add_argument("--out", required=True, help="new run directory")
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    state = load_checkpoint(args.run_dir)
    model, cfg = model_from_checkpoint(state)
    if not isinstance(model, DDSP):
        p.exit(1, "not a DDSP run\n")
    data = AudioDataset.from_folder(
        args.audio_dir, samplerate=cfg.samplerate, channels=1, n_samples=cfg.n_samples
    )
    labels = load_labels(data, cfg.ratio, Path(args.out) / "f0-labels")
    for prm in model.parameters():
        prm.requires_grad_(False)
    params = list(model.pitch_net.parameters())
    for prm in params:
        prm.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=args.lr)
    half = cfg.batch_size // 2
    t0, step = time.monotonic(), 0
    errs: list[float] = []
    while time.monotonic() - t0 < 60 * args.minutes:
        xa, fa, va = labelled_batch(data, labels, rng, half, cfg.ratio)
        xb, fb, vb = random_tones(
            rng, cfg.batch_size - half, cfg.n_samples, cfg.samplerate, cfg.ratio
        )
        gain = 10 ** (rng.uniform(-6, 3, (half, 1, 1)) / 20)
        x = torch.from_numpy(np.concatenate([(xa * gain).astype(np.float32), xb]))
        f0 = torch.from_numpy(np.concatenate([fa, fb]))
        voiced = torch.from_numpy(np.concatenate([va, vb]))
        loss, err = pitch_loss(model, x, f0, voiced)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        errs.append(float(err))
        if step % 100 == 0:
            print(
                f"step {step}: loss {float(loss.detach()):.3f}, mean |error| {np.mean(errs):.1f} cents "
                f"({time.monotonic() - t0:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
            errs = []
    command = "python -m models.ddsp_pitchtune " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    state["model"] = model.state_dict()
    state["command"] = f"{state.get('command', '')} && {command} ({step} pitch-network steps)"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "config.json")
    torch.save(state, out / "checkpoint.pt")
    print(f"done: {step} steps; wrote {out / 'checkpoint.pt'}", file=sys.stderr)


if __name__ == "__main__":
    main()

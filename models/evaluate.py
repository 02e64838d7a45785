"""Figures for a trained model: reconstruction quality and latent-space variety, as JSON.

``python -m models.evaluate MODEL_OR_RUN [--holdout DIR] [--out FILE.json]``

* Reconstruction: multiscale spectral distance (the training loss, lower is better) between
  held-out clips and their reconstructions, against two trivial baselines: decoding the mean
  latent of those clips (a model that ignores its input) and silence.
* Variety: spectral centroid and loudness of sound decoded from a grid of constant latents
  (each dimension swept over -2…2 with the others at 0, plus random prior draws).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.data import AudioDataset
from models.errors import ModelsError
from models.export import load_vae
from models.losses import multiscale_spectral_distance
from models.vae import VAE

SWEEP = (-2.0, -1.0, 0.0, 1.0, 2.0)


def spectral_centroid_hz(y: np.ndarray, samplerate: int, n_fft: int = 2048) -> float:
    """Energy-weighted mean spectral centroid of a mono signal (Hz)."""
    hop = n_fft // 4
    if len(y) < n_fft:
        y = np.pad(y, (0, n_fft - len(y)))
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop] * np.hanning(n_fft)
    mag = np.abs(np.fft.rfft(frames, axis=-1))
    freqs = np.fft.rfftfreq(n_fft, 1 / samplerate)
    energy = mag.sum(-1)
    cent = (mag * freqs).sum(-1) / np.maximum(energy, 1e-12)
    return float((cent * energy).sum() / max(energy.sum(), 1e-12))


def loudness_db(y: np.ndarray) -> float:
    """RMS level in dB full scale (floor -120)."""
    return float(20 * np.log10(max(float(np.sqrt(np.mean(np.square(y)))), 1e-6)))


def _range(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 2),
        "max": round(max(values), 2),
        "range": round(max(values) - min(values), 2),
    }


def reconstruction_figures(
    model: VAE,
    clips: list[np.ndarray],
    scales: tuple[int, ...],
    *,
    samplerate: int,
    seconds: float,
    seed: int,
) -> dict[str, Any]:
    """MSS distance of reconstructions vs mean-latent and silence baselines on ``clips``."""
    n = int(seconds * samplerate) // model.ratio * model.ratio
    segs = []
    for clip in clips:
        # Up to three non-overlapping segments per clip, skipping near-silent ones.
        for start in range(0, clip.shape[1] - n + 1, max(n, (clip.shape[1] - n) // 3 or n)):
            seg = clip[:, start : start + n]
            if loudness_db(seg) > -50:
                segs.append(seg)
    if not segs:
        raise ModelsError("held-out clips are silent or shorter than the evaluation segment")
    x = torch.from_numpy(np.stack(segs))
    torch.manual_seed(seed)
    with torch.no_grad():
        target = model.synthesise(model.analyse(x))
        z = model.encode(x)
        y = model.decode(z)
        z_mean = z.mean((0, 2), keepdim=True).expand_as(z).contiguous()
        y_mean = model.decode(z_mean)
        per_seg, per_mean, per_sil = [], [], []
        for i in range(len(segs)):
            t = target[i : i + 1]
            per_seg.append(float(multiscale_spectral_distance(t, y[i : i + 1], scales)))
            per_mean.append(float(multiscale_spectral_distance(t, y_mean[i : i + 1], scales)))
            per_sil.append(float(multiscale_spectral_distance(t, torch.zeros_like(t), scales)))
    model_d, mean_d = float(np.mean(per_seg)), float(np.mean(per_mean))
    wins = int(np.sum(np.array(per_seg) < np.array(per_mean)))
    return {
        "segments": len(segs),
        "segment_seconds": round(n / samplerate, 3),
        "mss_model": round(model_d, 4),
        "mss_mean_latent_baseline": round(mean_d, 4),
        "mss_silence_baseline": round(float(np.mean(per_sil)), 4),
        "improvement_vs_mean_latent": round(1 - model_d / mean_d, 4),
        "segments_better_than_baseline": f"{wins}/{len(segs)}",
        "latent_mean": [round(float(v), 3) for v in z.mean((0, 2))],
        "latent_std": [round(float(v), 3) for v in z.std((0, 2))],
    }


def latent_grid_figures(
    model: VAE, samplerate: int, seconds: float = 0.6, n_random: int = 32, seed: int = 0
) -> dict[str, Any]:
    """Centroid and loudness of constant-latent renders across the latent space."""
    frames = int(seconds * samplerate) // model.ratio
    skip = int(0.1 * samplerate)  # let the causal convolutions fill from silence
    gen = torch.Generator().manual_seed(seed)
    points: list[torch.Tensor] = []
    labels: list[tuple[int, float]] = []
    for d in range(model.latent_size):
        for v in SWEEP:
            z = torch.zeros(model.latent_size)
            z[d] = v
            points.append(z)
            labels.append((d, v))
    random_z = torch.randn(n_random, model.latent_size, generator=gen)
    points += list(random_z)
    z = torch.stack(points)[:, :, None].expand(-1, -1, frames).contiguous()
    torch.manual_seed(seed)
    with torch.no_grad():
        y = model.decode(z)[:, 0, skip:].numpy()
    cents = [spectral_centroid_hz(s, samplerate) for s in y]
    louds = [loudness_db(s) for s in y]
    per_dim = []
    for d in range(model.latent_size):
        idx = [i for i, (dd, _) in enumerate(labels) if dd == d]
        per_dim.append(
            {
                "dim": d,
                "centroid_hz": _range([cents[i] for i in idx]),
                "loudness_db": _range([louds[i] for i in idx]),
            }
        )
    return {
        "points": len(points),
        "sweep_values": list(SWEEP),
        "random_prior_points": n_random,
        "centroid_hz": _range(cents),
        "loudness_db": _range(louds),
        "silent_points_below_-60dB": int(sum(v < -60 for v in louds)),
        "per_dim": per_dim,
    }


def corpus_figures(clips: list[np.ndarray], samplerate: int) -> dict[str, Any]:
    """The same two measures on 0.5 s windows of the held-out audio, for comparison."""
    n = samplerate // 2
    cents, louds = [], []
    for clip in clips:
        for start in range(0, clip.shape[1] - n + 1, n):
            seg = clip[0, start : start + n]
            if loudness_db(seg) > -60:
                cents.append(spectral_centroid_hz(seg, samplerate))
                louds.append(loudness_db(seg))
    return {"windows": len(cents), "centroid_hz": _range(cents), "loudness_db": _range(louds)}


def preview_curve(run_dir: str | Path) -> list[dict[str, Any]]:
    """Per preview file of a run: spectral distance to ``original.wav``, centroid, loudness.

    A numeric companion to listening to ``RUN_DIR/previews`` while a model trains.
    """
    import soundfile as sf

    folder = Path(run_dir) / "previews"
    if not (folder / "original.wav").is_file():
        raise ModelsError(f"no previews in {folder}: train with models.train first")
    ref, sr = sf.read(folder / "original.wav", dtype="float32", always_2d=True)
    x = torch.from_numpy(ref.T[None].copy())
    rows: list[dict[str, Any]] = []
    for path in sorted(folder.glob("step_*.wav")):
        y, _ = sf.read(path, dtype="float32", always_2d=True)
        yt = torch.from_numpy(y.T[None].copy())
        n = min(x.shape[-1], yt.shape[-1])
        rows.append(
            {
                "step": int(path.stem.split("_")[1]),
                "mss_to_original": round(
                    float(multiscale_spectral_distance(x[..., :n], yt[..., :n])), 4
                ),
                "centroid_hz": round(spectral_centroid_hz(y[:, 0], sr), 1),
                "loudness_db": round(loudness_db(y[:, 0]), 2),
            }
        )
    rows.append(
        {
            "step": "original",
            "centroid_hz": round(spectral_centroid_hz(ref[:, 0], sr), 1),
            "loudness_db": round(loudness_db(ref[:, 0]), 2),
        }
    )
    return rows


def evaluate(
    source: str | Path, holdout: str | Path, *, seconds: float = 4.0, seed: int = 0
) -> dict[str, Any]:
    """All figures for one model, as a JSON-ready dict."""
    model, cfg, steps = load_vae(source)
    data = AudioDataset.from_folder(
        holdout,
        samplerate=cfg.samplerate,
        channels=cfg.channels,
        n_samples=int(seconds * cfg.samplerate) // cfg.ratio * cfg.ratio,
        verbose=False,
    )
    return {
        "model": str(source),
        "steps": steps,
        "holdout": str(holdout),
        "holdout_files": len(data.clips),
        "reconstruction": reconstruction_figures(
            model, data.clips, cfg.mss_scales, samplerate=cfg.samplerate, seconds=seconds, seed=seed
        ),
        "latent_grid": latent_grid_figures(model, cfg.samplerate, seed=seed),
        "holdout_audio": corpus_figures(data.clips, cfg.samplerate),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.evaluate", description=__doc__)
    parser.add_argument("model", help="exported .ts (from models.export) or a run directory")
    parser.add_argument("--holdout", default="runs/corpus/holdout", help="held-out audio folder")
    parser.add_argument("--seconds", type=float, default=4.0, help="segment length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument(
        "--previews",
        action="store_true",
        help="MODEL is a run dir: print the distance of each preview to the original instead",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        if args.previews:
            result: Any = preview_curve(args.model)
        else:
            result = evaluate(args.model, args.holdout, seconds=args.seconds, seed=args.seed)
    except ModelsError as e:
        parser.exit(1, f"{type(e).__name__}: {e}\n")
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

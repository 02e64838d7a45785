"""Training pieces for the DDSP family (:mod:`models.ddsp`): f0 labels and losses.

Run through the common CLI: ``python -m models.train AUDIO_DIR --out RUN --config ddsp``
(:class:`models.train.DDSPTrainer` uses what is here; this module imports nothing of the
trainer, so the dependency runs one way).

f0 labels: each ``NAME.wav`` may have ``NAME.f0.npz`` beside it (``f0_hz``, ``voiced``,
``hop``, ``sr``; :mod:`models.corpus` writes exact ones). Audio without labels is labelled
once by :func:`models.pitchtrack.label_f0` (imported only then) and the labels are cached in
``RUN_DIR/f0-labels/``.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.corpus import label_path
from models.data import AudioDataset
from models.ddsp import DDSP
from models.errors import ModelsError
from models.losses import multiscale_spectral_distance

PITCH_SIGMA_BINS = 1.25  # target blur of the pitch classifier (25 cents at 20 cents/bin)


def resample_labels(
    f0_hz: np.ndarray, voiced: np.ndarray, hop: int, sr: int, ratio: int, samplerate: int
) -> tuple[np.ndarray, np.ndarray]:
    """Labels at (hop, sr) → labels at the model's frames (ratio, samplerate), nearest frame
    by time of each frame's last sample."""
    f0_hz = np.asarray(f0_hz, np.float64)
    voiced = np.asarray(voiced, np.float64)
    if hop == ratio and sr == samplerate:
        return f0_hz.astype(np.float32), voiced.astype(np.float32)
    n_out = int(len(f0_hz) * hop / sr * samplerate) // ratio
    t_out = (np.arange(n_out) + 1) * ratio / samplerate
    idx = np.clip(np.round(t_out * sr / hop - 1).astype(int), 0, len(f0_hz) - 1)
    return f0_hz[idx].astype(np.float32), voiced[idx].astype(np.float32)


def load_labels(
    data: AudioDataset, ratio: int, cache_dir: Path | None = None, verbose: bool = True
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per clip of ``data``: (f0_hz, voiced) per model frame.

    Raises
    ------
    ModelsError
        If a clip has no label file and :mod:`models.pitchtrack` is not available.
    """
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for name, clip in zip(data.names, data.clips, strict=True):
        frames = clip.shape[1] // ratio
        path = label_path(name)
        cached = None
        if not path.is_file() and cache_dir is not None:
            digest = hashlib.sha1(f"{Path(name).resolve()}:{clip.shape[1]}".encode()).hexdigest()
            cached = cache_dir / f"{Path(name).stem}-{digest[:10]}.f0.npz"
            if cached.is_file():
                path = cached
        if path.is_file():
            lab = np.load(path)
            f0, voiced = resample_labels(
                lab["f0_hz"],
                lab["voiced"],
                int(lab["hop"]),
                int(lab["sr"]),
                ratio,
                data.samplerate,
            )
        else:
            f0, voiced = _track(clip[0], data.samplerate, ratio, name)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                np.savez(cached, f0_hz=f0, voiced=voiced, hop=ratio, sr=data.samplerate)
            if verbose:
                print(f"labelled {name} with models.pitchtrack", file=sys.stderr)
        f0 = np.pad(f0[:frames], (0, max(0, frames - len(f0))))
        voiced = np.pad(voiced[:frames], (0, max(0, frames - len(voiced))))
        voiced = np.where(f0 > 0, voiced, 0.0).astype(np.float32)
        out.append((f0.astype(np.float32), voiced))
    return out


def _track(audio: np.ndarray, sr: int, hop: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Label unlabelled audio with the project's pitch tracker (imported lazily: it may pull
    heavier packages than training needs otherwise)."""
    try:
        from models.pitchtrack import label_f0  # type: ignore[import-not-found,unused-ignore]
    except ImportError as e:
        raise ModelsError(
            f"{name} has no f0 labels ({label_path(name).name}) and models.pitchtrack is not "
            f"available to make them ({e}). Add NAME.f0.npz files (arrays f0_hz, voiced, hop, "
            "sr) beside the audio, or install the pitch tracker."
        ) from e
    f0, prob = label_f0(audio, sr, hop)
    f0 = np.nan_to_num(np.asarray(f0, np.float64))
    voiced = (np.asarray(prob) >= 0.5) & (f0 > 0)
    return f0.astype(np.float32), voiced.astype(np.float32)


def labelled_batch(
    data: AudioDataset,
    labels: list[tuple[np.ndarray, np.ndarray]],
    rng: np.random.Generator,
    batch_size: int,
    ratio: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random frame-aligned slices with their labels: audio (b, 1, n), f0 and voiced (b, F)."""
    n = data.n_samples
    frames = n // ratio
    lengths = np.array([c.shape[1] - n + 1 for c in data.clips], dtype=float)
    idx = rng.choice(len(data.clips), size=batch_size, p=lengths / lengths.sum())
    x = np.empty((batch_size, 1, n), dtype=np.float32)
    f0 = np.empty((batch_size, frames), dtype=np.float32)
    voiced = np.empty((batch_size, frames), dtype=np.float32)
    for i, k in enumerate(idx):
        start = int(rng.integers(0, (data.clips[k].shape[1] - n) // ratio + 1)) * ratio
        x[i] = data.clips[k][:1, start : start + n]
        f0[i] = labels[k][0][start // ratio : start // ratio + frames]
        voiced[i] = labels[k][1][start // ratio : start // ratio + frames]
    return x, f0, voiced


def ddsp_losses(
    model: DDSP,
    x: torch.Tensor,
    f0_hz: torch.Tensor,
    voiced: torch.Tensor,
    mss_scales: tuple[int, ...],
) -> dict[str, torch.Tensor]:
    """Reconstruction (multiscale spectral distance), timbre KL, pitch classification and
    voicing losses for one batch. The decoder is driven by the labelled pitch where voiced
    (teacher forcing), by the pitch network's own (detached) estimate elsewhere."""
    pitch, logits, loud, mean, scale = model.encode_parts(x)
    timbre = mean + scale * torch.randn_like(mean)
    var = scale * scale
    kl = 0.5 * (mean * mean + var - torch.log(var) - 1).sum(1).mean()
    v = voiced > 0.5
    label = model.pitch_scale * torch.log2(f0_hz.clamp_min(1.0) / model.pitch_ref_hz)
    z_pitch = torch.where(v, label, pitch.detach())
    z = torch.cat([z_pitch.unsqueeze(1), loud.unsqueeze(1), timbre], 1)
    y = model.decode_raw(z, True)
    mss = multiscale_spectral_distance(x, y, mss_scales)
    # Pitch: soft-label cross entropy over log-f0 bins, voiced frames in range only.
    centre = (label / model.pitch_scale - model.pitch_bin0) * model.pitch_bins_per_octave
    bins = torch.arange(model.pitch_bins, dtype=x.dtype).view(1, -1, 1)
    target = torch.exp(-0.5 * ((bins - centre.unsqueeze(1)) / PITCH_SIGMA_BINS) ** 2)
    target = target / target.sum(1, keepdim=True).clamp_min(1e-9)
    valid = v & (centre >= 0) & (centre <= model.pitch_bins - 1)
    ce_all = -(target * torch.log_softmax(logits[:, : model.pitch_bins], 1)).sum(1)
    n_valid = valid.sum().clamp_min(1)
    pitch_ce = (ce_all * valid).sum() / n_valid
    voicing = F.binary_cross_entropy_with_logits(logits[:, -1], voiced)
    with torch.no_grad():
        cents = 1200 * (pitch - label).abs() / model.pitch_scale
        pitch_err = (cents * valid).sum() / n_valid
    return {
        "y": y,
        "mss": mss,
        "kl": kl,
        "pitch_ce": pitch_ce,
        "voicing": voicing,
        "pitch_err_cents": pitch_err,
    }

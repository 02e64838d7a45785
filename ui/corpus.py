"""Turn a model and a corpus into latent frames with descriptors (the first half of a map build).

Loads a TorchScript model with the nn~ interface, reads audio (any rate, any channels), encodes it
frame by frame, and measures loudness and spectral centroid per latent frame; decoder-only
models are explored by decoding a smooth walk through their latent space instead. torch is
imported only when a model is loaded.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.nn import ContractError, read_contract

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aif", ".aiff", ".mp3")
SAMPLED_SOURCE = "(sampled latent walk)"


class MapBuildError(RuntimeError):
    """A build that cannot proceed; the message says what is missing and how to fix it."""


# ---------------------------------------------------------------------- the model
@dataclass
class NnModel:
    """A TorchScript model with the nn~ interface, as far as map building needs it."""

    module: Any
    name: str
    samplerate: int
    ratio: int
    latent_size: int
    in_channels: int
    out_channels: int
    has_encode: bool

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NnModel:
        """Load ``path`` and read its interface; fail naming what is missing."""
        path = Path(path)
        if not path.is_file():
            raise MapBuildError(f"model file {str(path)!r} not found")
        import torch  # heavy (~2 s): only once there is a model to load

        torch.set_num_threads(1)
        with warnings.catch_warnings():
            # torch 2.13 deprecates every torch.jit entry point; the model format is still jit.
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu").eval()
        try:
            c = read_contract(module, path)
        except ContractError as exc:
            raise MapBuildError(f"{path}: {exc}") from None
        has_encode = c.has_encode and c.encode is not None
        return cls(
            module=module,
            name=c.name,
            samplerate=c.samplerate,
            ratio=c.ratio,
            latent_size=c.latent_size,
            in_channels=c.encode.in_channels if has_encode and c.encode else c.channels,
            out_channels=c.channels,
            has_encode=has_encode,
        )

    def encode(self, audio: NDArray[np.float32]) -> NDArray[np.float32]:
        """Encode ``audio`` (n_samples,) mono, length a multiple of ratio -> (n_frames, D)."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        x = x.reshape(1, 1, -1).expand(1, self.in_channels, -1).contiguous()
        with torch.no_grad():
            z = self.module.encode(x)
        return z[0, : self.latent_size].T.numpy().astype(np.float32)

    def decode(self, z: NDArray[np.float32]) -> NDArray[np.float32]:
        """Decode latents (n_frames, D) -> mono audio (n_frames * ratio,)."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(z.T, dtype=np.float32))[None]
        with torch.no_grad():
            y = self.module.decode(x)
        return y[0].mean(dim=0).numpy().astype(np.float32)


# ---------------------------------------------------------------------- audio and descriptors
def audio_files(audio_dir: str | os.PathLike[str]) -> list[Path]:
    """Audio files under ``audio_dir`` (recursive), sorted for a reproducible build."""
    root = Path(audio_dir)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise MapBuildError(f"audio folder {str(root)!r} not found")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise MapBuildError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) under {str(root)!r}")
    return files


def read_mono(path: Path, *, samplerate: int) -> NDArray[np.float32]:
    """Read ``path`` as mono float32 at ``samplerate`` (resampled with soxr when needed)."""
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    if sr != samplerate:
        import soxr

        mono = soxr.resample(mono, sr, samplerate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def frame_descriptors(
    audio: NDArray[np.float32], *, ratio: int, samplerate: int
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Loudness (RMS dBFS) and spectral centroid (Hz) for each latent frame of ``audio``.

    Each frame's analysis window is centred on its hop of ``ratio`` samples and at least 1024
    samples long, so short hops still resolve low frequencies.

    Returns
    -------
    loudness_db, centroid_hz : ndarray, shape (len(audio) // ratio,), float32
    """
    n_frames = len(audio) // ratio
    n_fft = max(1024, 1 << int(np.ceil(np.log2(ratio))))
    pad = (n_fft - ratio) // 2
    padded = np.pad(audio[: n_frames * ratio], (pad, n_fft))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::ratio][:n_frames]
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    loudness = 20.0 * np.log10(np.maximum(rms, 1e-10))
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / samplerate)
    power = spectrum.sum(axis=1)
    centroid = np.where(power > 1e-9, spectrum @ freqs / np.maximum(power, 1e-12), 0.0)
    return loudness.astype(np.float32), centroid.astype(np.float32)


def latent_walk(
    n_frames: int, latent_size: int, *, seed: int, std: float = 1.0
) -> NDArray[np.float32]:
    """A smooth random walk through the latent space, std ``std`` per dimension.

    Decoder-only models have no encoder to place a corpus; a smooth walk (rather than
    independent draws) keeps a streaming decoder's internal state consistent with each frame.
    """
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(n_frames + 64, latent_size))
    # One-pole low-pass over ~8 frames, then rescale to unit variance per dimension.
    alpha = 1.0 / 8.0
    walk = np.empty_like(noise)
    acc = np.zeros(latent_size)
    for i in range(noise.shape[0]):
        acc += alpha * (noise[i] - acc)
        walk[i] = acc
    walk = walk[64:]
    walk = (walk - walk.mean(axis=0)) / np.maximum(walk.std(axis=0), 1e-9)
    return (walk * std).astype(np.float32)


@dataclass
class Frames:
    """Everything known per latent frame before the 2-D fit."""

    latents: NDArray[np.float32]
    source_index: NDArray[np.int32]
    time_s: NDArray[np.float32]
    loudness_db: NDArray[np.float32]
    centroid_hz: NDArray[np.float32]
    source_files: list[str]


def encode_corpus(
    model: NnModel, files: list[Path], *, root: Path | None, chunk_frames: int = 512
) -> Frames:
    """Encode every file, chunk by chunk, with a tqdm progress bar."""
    from tqdm import tqdm

    parts: list[tuple[NDArray[Any], ...]] = []
    names: list[str] = []
    for index, path in enumerate(tqdm(files, desc="encoding", unit="file")):
        audio = read_mono(path, samplerate=model.samplerate)
        n = -(-len(audio) // model.ratio) * model.ratio  # ceil to whole frames
        audio = np.pad(audio, (0, n - len(audio)))
        if n == 0:
            continue
        step = chunk_frames * model.ratio
        z = np.concatenate([model.encode(audio[s : s + step]) for s in range(0, n, step)])
        loud, cent = frame_descriptors(audio, ratio=model.ratio, samplerate=model.samplerate)
        m = min(len(z), len(loud))
        t = (np.arange(m) * model.ratio / model.samplerate).astype(np.float32)
        parts.append((z[:m], np.full(m, index, np.int32), t, loud[:m], cent[:m]))
        names.append(str(path.relative_to(root)) if root and root in path.parents else path.name)
    if not parts:
        raise MapBuildError("the corpus is empty: every file had zero samples")
    z, source, t, loud, cent = (np.concatenate(c) for c in zip(*parts, strict=True))
    return Frames(z, source, t.astype(np.float32), loud, cent, source_files=names)


def sample_decoder(
    model: NnModel, n_frames: int, *, seed: int, std: float = 1.0, chunk_frames: int = 256
) -> Frames:
    """Decode a smooth latent walk of ``n_frames`` and describe what came out."""
    from tqdm import tqdm

    z = latent_walk(n_frames, model.latent_size, seed=seed, std=std)
    audio = np.concatenate(
        [
            model.decode(z[s : s + chunk_frames])
            for s in tqdm(range(0, n_frames, chunk_frames), desc="decoding", unit="chunk")
        ]
    )
    loud, cent = frame_descriptors(audio, ratio=model.ratio, samplerate=model.samplerate)
    t = (np.arange(n_frames) * model.ratio / model.samplerate).astype(np.float32)
    return Frames(
        z, np.zeros(n_frames, np.int32), t, loud[:n_frames], cent[:n_frames], [SAMPLED_SOURCE]
    )


def select_frames(frames: Frames, *, max_points: int, min_db: float | None, seed: int) -> Frames:
    """Drop silence (below ``min_db``) and exact duplicate latents, then subsample evenly.

    Duplicate latents (digital silence, held notes) would make the map's inverse ambiguous.
    """
    keep = np.ones(len(frames.latents), bool)
    if min_db is not None:
        loud_enough = frames.loudness_db >= min_db
        if loud_enough.sum() >= 2:  # an all-quiet corpus keeps everything
            keep &= loud_enough
    idx = np.flatnonzero(keep)
    _, first = np.unique(frames.latents[idx], axis=0, return_index=True)
    idx = idx[np.sort(first)]
    if len(idx) > max_points:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(idx, size=max_points, replace=False))
    return Frames(
        frames.latents[idx],
        frames.source_index[idx],
        frames.time_s[idx],
        frames.loudness_db[idx],
        frames.centroid_hz[idx],
        frames.source_files,
    )

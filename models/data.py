"""Audio folder → training examples: find, decode (soundfile), resample (soxr), slice."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from models.errors import (
    CorruptAudioError,
    EmptyDatasetError,
    NoReadableAudioError,
    UnsupportedSampleRateError,
)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
MIN_INPUT_SAMPLERATE = 4000
MAX_INPUT_SAMPLERATE = 384000


def find_audio(folder: str | Path) -> list[Path]:
    """Every file under ``folder`` (recursive) with an audio extension, sorted.

    Raises
    ------
    EmptyDatasetError
        If the folder does not exist or holds no audio file.
    """
    root = Path(folder)
    if not root.is_dir():
        raise EmptyDatasetError(f"audio folder {str(root)!r} does not exist or is not a folder")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not paths:
        raise EmptyDatasetError(
            f"no audio files in {str(root)!r} (looked for {', '.join(AUDIO_EXTENSIONS)}); "
            "add some, or make a corpus with: python -m models.corpus OUT_DIR"
        )
    return paths


def load_audio(path: str | Path, *, samplerate: int, channels: int) -> np.ndarray:
    """Decode, resample and fix the channel count of one file.

    Returns
    -------
    ndarray, shape (channels, n_samples), float32

    Raises
    ------
    CorruptAudioError
        If soundfile cannot decode the file.
    UnsupportedSampleRateError
        If the file's rate is outside what soxr resamples sensibly.
    """
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError…
        raise CorruptAudioError(f"cannot decode {str(path)!r}: {e}") from e
    if not MIN_INPUT_SAMPLERATE <= sr <= MAX_INPUT_SAMPLERATE:
        raise UnsupportedSampleRateError(
            f"{str(path)!r} has sample rate {sr} Hz; supported input rates are "
            f"{MIN_INPUT_SAMPLERATE}–{MAX_INPUT_SAMPLERATE} Hz"
        )
    if sr != samplerate:
        audio = soxr.resample(audio, sr, samplerate, quality="HQ").astype(np.float32)
    audio = audio.T  # (file_channels, n)
    if audio.shape[0] != channels:
        mono = audio.mean(0, keepdims=True)
        audio = np.repeat(mono, channels, 0) if channels > 1 else mono
    audio = np.nan_to_num(audio)
    return np.ascontiguousarray(audio, dtype=np.float32)


@dataclass
class AudioDataset:
    """All readable audio of a folder, in memory, with random fixed-length slicing.

    Attributes
    ----------
    clips : list of ndarray, each shape (channels, n_samples), float32
    skipped : list of (path, reason)
    """

    folder: str
    samplerate: int
    channels: int
    n_samples: int
    clips: list[np.ndarray] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        *,
        samplerate: int,
        channels: int,
        n_samples: int,
        verbose: bool = True,
    ) -> AudioDataset:
        """Read every file, skipping (and naming) the ones that fail.

        Raises
        ------
        EmptyDatasetError
            No audio files at all.
        NoReadableAudioError
            Files exist but none decodes to at least ``n_samples`` samples.
        """
        ds = cls(str(folder), samplerate, channels, n_samples)
        for path in find_audio(folder):
            try:
                audio = load_audio(path, samplerate=samplerate, channels=channels)
            except (CorruptAudioError, UnsupportedSampleRateError) as e:
                ds.skipped.append((str(path), str(e)))
                if verbose:
                    print(f"skipping {path}: {e}", file=sys.stderr)
                continue
            if audio.shape[1] < n_samples:
                reason = f"too short ({audio.shape[1]} < {n_samples} samples)"
                ds.skipped.append((str(path), reason))
                if verbose:
                    print(f"skipping {path}: {reason}", file=sys.stderr)
                continue
            ds.clips.append(audio)
            ds.names.append(str(path))
        if not ds.clips:
            detail = "; ".join(f"{p}: {r}" for p, r in ds.skipped[:5])
            raise NoReadableAudioError(
                f"no readable audio of at least {n_samples / samplerate:.2f} s in "
                f"{str(folder)!r} ({len(ds.skipped)} file(s) skipped: {detail})"
            )
        return ds

    @property
    def seconds(self) -> float:
        return sum(c.shape[1] for c in self.clips) / self.samplerate

    def summary(self) -> dict[str, object]:
        """For the model card: where the data came from and how much."""
        return {
            "folder": self.folder,
            "files": len(self.clips),
            "skipped_files": len(self.skipped),
            "seconds": round(self.seconds, 1),
            "samplerate": self.samplerate,
            "channels": self.channels,
        }

    def batch(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        """Random slices, clip chosen in proportion to its length.

        Returns
        -------
        ndarray, shape (batch_size, channels, n_samples), float32
        """
        lengths = np.array([c.shape[1] - self.n_samples + 1 for c in self.clips], dtype=float)
        idx = rng.choice(len(self.clips), size=batch_size, p=lengths / lengths.sum())
        out = np.empty((batch_size, self.channels, self.n_samples), dtype=np.float32)
        for i, k in enumerate(idx):
            start = rng.integers(0, self.clips[k].shape[1] - self.n_samples + 1)
            out[i] = self.clips[k][:, start : start + self.n_samples]
        return out

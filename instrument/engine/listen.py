"""The instrument listens: input audio → streaming ``encode`` → latent transforms → ``decode``.

Once per decode frame (decode worker) the :class:`Listener` takes that frame's share of the
input (:class:`FileInput` offline, :class:`~instrument.engine.audio_in.RingInput` live),
brings it to the model's rate and channels, encodes every full encoder frame with the
model's streaming ``encode`` on its own ``fresh()`` copy (the playing copy's decoder state is
never touched), and keeps the latest encoded latent. :class:`~mappings.listen.LatentTransform`
then mixes it with the controllers' latent; :class:`~mappings.descriptors.Descriptors` turns
the same audio into signals a patch maps like a sensor's.

Offline the input is read exactly one decode frame (``ratio`` samples at the model rate) per
step, so a render does not depend on the output block size. Live, each step takes what the
capture ring holds: input and output share one duplex stream, so they cannot drift.

What is not done: the input is not resampled *per step* offline (the whole file once, by
soxr, before the first frame), and a live backlog longer than :data:`MAX_BACKLOG_FRAMES`
encoder frames or :data:`MAX_BACKLOG_SAMPLES` (after a stall) is dropped, counted in
``skipped``, rather than encoded late.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

import numpy as np

from instrument.engine.resample import Resampler
from instrument.engine.runtime import ModelRuntime
from instrument.errors import AudioInputError
from instrument.patch.contract import LATENT_LIMIT
from mappings.descriptors import DESCRIPTOR_NAMES, Descriptors
from mappings.listen import LatentTransform
from mappings.sources import AUDIO_ADDRESS

#: A live backlog longer than this (after a stall) is dropped rather than encoded late: at
#: least 8 encoder frames and 85 ms at 48 kHz, so a prebuffer's jitter never drops input.
MAX_BACKLOG_FRAMES = 8
MAX_BACKLOG_SAMPLES = 4096

__all__ = [
    "AUDIO_ADDRESS",
    "DESCRIPTOR_NAMES",
    "FileInput",
    "InputSource",
    "Listener",
    "cannot_listen",
    "make_encoder",
]


def cannot_listen(model_name: str) -> str:
    """The message for a decoder-only model asked to listen."""
    return (
        f"model {model_name} has no encode method (decoder-only): it cannot listen; "
        "playing without input (use a model with encode, e.g. the default model or a RAVE export)"
    )


class InputSource(Protocol):
    """Where the input audio comes from (a file offline, the capture ring live)."""

    samplerate: int
    channels: int
    overruns: int

    def pull(self, n: int) -> np.ndarray:
        """Input for one decode frame of ``n`` samples at :attr:`samplerate`, shape
        (frames, channels) float32: exactly ``n`` offline, what has arrived live."""
        ...


class FileInput:
    """An audio file as the input: read once, resampled once to ``samplerate`` (soxr, as the
    output is), handed out ``n`` samples at a time, silence after its end.

    Raises
    ------
    AudioInputError
        The file is missing or not audio soundfile can read.
    """

    def __init__(self, path: str | Path, *, samplerate: int) -> None:
        import soundfile
        import soxr

        self.path = Path(path)
        if not self.path.is_file():
            raise AudioInputError(f"input file {str(path)!r} not found; give a WAV/FLAC/AIFF path")
        try:
            data, sr = soundfile.read(str(self.path), dtype="float32", always_2d=True)
        except (RuntimeError, OSError, soundfile.LibsndfileError) as exc:
            raise AudioInputError(
                f"cannot read input file {str(path)!r} ({exc}); give a WAV/FLAC/AIFF file"
            ) from None
        self.file_samplerate = int(sr)
        if sr != samplerate:
            data = soxr.resample(data, sr, samplerate, quality="HQ")
        self.audio = np.ascontiguousarray(data, dtype=np.float32)
        self.samplerate = int(samplerate)
        self.channels = int(self.audio.shape[1])
        self.overruns = 0
        self.pos = 0

    @property
    def duration_s(self) -> float:
        return self.audio.shape[0] / self.samplerate

    def pull(self, n: int) -> np.ndarray:
        out = self.audio[self.pos : self.pos + n]
        self.pos += n
        if out.shape[0] < n:
            pad = np.zeros((n - out.shape[0], self.channels), dtype=np.float32)
            out = np.concatenate([out, pad])
        return out


class Listener:
    """Input → encoded latent, one decode frame per :meth:`step`. Decode worker.

    Parameters
    ----------
    encoder : ModelRuntime or None
        A ``fresh_encoder()`` copy of the playing model (its own streaming state, warmed up
        on silence), with ``encode``;
        None for a decoder-only model: the input is then read and dropped (:attr:`active`
        False) until a model that can listen is loaded.
    source : InputSource
    seed : int
        Seed of the transform's noise.
    """

    def __init__(self, encoder: ModelRuntime | None, source: InputSource, *, seed: int = 0) -> None:
        self.source = source
        self.seed = seed
        self.want_descriptors = False
        self.frames_encoded = 0
        self.skipped = 0
        self.bad_input = 0  # frames with NaN/inf samples (zeroed before encode)
        self._level = [0.0, 0, 0.0]  # sum of squares, samples, peak since the last level()
        self.transform: LatentTransform | None = None
        self.install(encoder)

    def install(self, encoder: ModelRuntime | None) -> None:
        """Take a (new) model's encoder (None: a decoder-only model, the input is dropped);
        keep the transform settings the two models' latents share."""
        self.active = encoder is not None
        self.z_in: np.ndarray | None = None
        if encoder is None:
            return
        info = encoder.info
        if not info.has_encode:
            raise AudioInputError(cannot_listen(info.name))
        self.encoder = encoder
        self.info = info
        self.latent_size = info.latent_size
        self.enc_ratio = int(info.encode_ratio or info.ratio)
        self.enc_channels = int(info.encode_channels or info.channels)
        src = self.source
        self.resampler = (
            Resampler(src.samplerate, info.samplerate, src.channels)
            if src.samplerate != info.samplerate
            else None
        )
        self._acc = np.zeros((0, self.enc_channels), dtype=np.float32)
        old = self.transform
        t = LatentTransform(
            info.latent_size,
            frame_s=info.frame_s,
            pitch_dim=info.latent.pitch_dim,
            pitch_scale=info.latent.pitch_scale,
            seed=self.seed,
            limit=LATENT_LIMIT,
        )
        if old is not None:
            n = min(old.latent_size, t.latent_size)
            for name in ("mix_target", "mix", "bias", "scale", "freeze", "noise"):
                getattr(t, name)[:n] = getattr(old, name)[:n]
            t.mix_smoothing_ms = old.mix_smoothing_ms
            if t.can_transpose:
                t.transpose_st = old.transpose_st
        self.transform = t
        self.descriptors = Descriptors(samplerate=info.samplerate)
        self._z = np.zeros(info.latent_size)

    @property
    def added_latency_s(self) -> float:
        """What listening adds to the input→sound path: one encoder frame must fill before it
        is encoded (RAVE's 2048 at 44.1 kHz: 46 ms), plus the input resampler's delay."""
        if not self.active:
            return 0.0
        delay = 0.0
        if self.resampler is not None:
            delay = self.resampler.delay_s
        return self.enc_ratio / self.info.samplerate + delay

    def _to_model_channels(self, x: np.ndarray) -> np.ndarray:
        c = self.enc_channels
        if x.shape[1] == c:
            return x
        if x.shape[1] == 1:
            return np.repeat(x, c, axis=1)
        if c == 1:
            return x.mean(axis=1, keepdims=True, dtype=np.float32)
        out = np.zeros((x.shape[0], c), dtype=np.float32)
        m = min(c, x.shape[1])
        out[:, :m] = x[:, :m]
        return out

    def step(self, n_model_samples: int) -> np.ndarray | None:
        """Pull one decode frame's input, encode every full encoder frame; return the latest
        encoded latent, shape (latent_size,), or None while nothing was heard. Decode worker."""
        src = self.source
        if not self.active:
            src.pull(n_model_samples)  # keep the capture ring drained
            return None
        n_in = n_model_samples
        if self.resampler is not None:
            n_in = -(-n_model_samples * src.samplerate // self.info.samplerate)
        x = src.pull(n_in)
        if self.resampler is not None:
            x = self.resampler(x)
        if x.size and not np.isfinite(x.sum()):
            self.bad_input += 1
            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        x = self._to_model_channels(x)
        if x.size:
            flat = x.ravel()
            lv = self._level
            lv[0] += float(np.dot(flat, flat))
            lv[1] += flat.size
            lv[2] = max(lv[2], float(np.abs(flat).max()))
        acc = np.concatenate([self._acc, x]) if self._acc.size else x
        r = self.enc_ratio
        full = acc.shape[0] // r
        most = max(MAX_BACKLOG_FRAMES, MAX_BACKLOG_SAMPLES // r)
        if full > most:
            drop = (full - most) * r
            self.skipped += full - most
            acc = acc[drop:]
            full = most
        for k in range(full):
            frame = np.clip(acc[k * r : (k + 1) * r].T, -1.0, 1.0)
            z = self.encoder.encode_frame(frame)
            n = min(z.shape[0], self.latent_size)
            self._z[:n] = z[:n]
            self.frames_encoded += 1
        self._acc = acc[full * r :].copy() if full else acc
        if full:
            self.z_in = self._z
        if self.want_descriptors and x.shape[0]:
            mono = x[:, 0] if x.shape[1] == 1 else x.mean(axis=1)
            self.descriptors.update(mono, pitch_hz=self._model_pitch())
        return self.z_in

    def _model_pitch(self) -> float | None:
        lat = self.info.latent
        if lat.pitch_dim is None or lat.pitch_scale is None or self.z_in is None:
            return None
        try:
            return lat.latent_to_pitch(float(self.z_in[lat.pitch_dim]))
        except (ValueError, OverflowError):
            return None

    def level_db(self) -> tuple[float, float] | None:
        """Input RMS and peak (dBFS) since the last call, None when nothing arrived."""
        sq, n, peak = self._level
        self._level = [0.0, 0, 0.0]
        if not n:
            return None
        return 10 * math.log10(sq / n + 1e-12), 20 * math.log10(peak + 1e-12)

    def descriptor_args(self) -> tuple[float, ...]:
        """The descriptors as the arguments of :data:`AUDIO_ADDRESS`, in
        :data:`DESCRIPTOR_NAMES` order."""
        v = self.descriptors.values
        return tuple(float(v[k]) for k in DESCRIPTOR_NAMES)

    def mix(self, z_ctrl: np.ndarray) -> np.ndarray:
        """The latent to decode: the controllers' ``z_ctrl`` mixed with the transformed input
        latent. Decode worker."""
        if not self.active or self.transform is None:
            return z_ctrl
        return self.transform(self.z_in, z_ctrl)


def make_encoder(runtime: ModelRuntime) -> ModelRuntime | None:
    """The listener's own copy of ``runtime`` (None for a decoder-only model). Off the decode
    worker: a copy costs a TorchScript load and a warm-up."""
    return runtime.fresh_encoder() if runtime.info.has_encode else None

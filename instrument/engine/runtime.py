"""Model runtime: load, validate and run TorchScript models with the nn~ interface.

A model is a TorchScript module with ``decode`` (and usually ``encode``, ``forward``), each
method ``m`` described by a buffer ``m_params = [in_channels, in_ratio, out_channels,
out_ratio]``, and its sample rate in ``sr`` (RAVE), ``sampling_rate`` (older RAVE) or
``get_sample_rate()`` (nn-tilde 1.6). Models made by RAVE's ``export --streaming`` and by
``python -m models.export`` both load here.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from instrument.errors import ModelError
from models.nn import ContractError, LatentCard, read_contract


@dataclass(frozen=True)
class ModelInfo:
    """What the engine needs to know about a model.

    ``delay_samples`` is the model's own latency (None when unknown: no model card).
    ``latent`` names the pitch/loudness dimensions when the card has a ``[latent]`` table
    (every field None otherwise). Read through :mod:`models.nn`, the one contract reader.
    """

    path: str
    name: str
    samplerate: int
    latent_size: int
    ratio: int
    channels: int
    methods: tuple[str, ...]
    delay_samples: int | None
    card: dict[str, Any]
    latent: LatentCard = field(default_factory=LatentCard)
    encode_ratio: int | None = None
    encode_channels: int | None = None

    @property
    def frame_s(self) -> float:
        return self.ratio / self.samplerate

    @property
    def has_encode(self) -> bool:
        return "encode" in self.methods


def _torch() -> Any:
    import torch

    return torch


def _jit_load(data: bytes, label: str) -> Any:
    torch = _torch()
    with warnings.catch_warnings():
        # torch 2.13 deprecates TorchScript entry points; nn~ models are TorchScript.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return torch.jit.load(io.BytesIO(data), map_location="cpu")
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"{label} is not a loadable TorchScript model ({first}); "
                "export it with `rave export --streaming` or `python -m models.export`"
            ) from None


class ModelRuntime:
    """A loaded, validated model. Not thread-safe: one runtime per decode worker.

    Parameters
    ----------
    path : str or Path
        TorchScript file.
    threads : int
        torch intra-op threads (1 by default: measured, 2 threads with a busy neighbour
        pushed decode p99 from ≤ 22 ms to 0.1–0.9 s).
    """

    def __init__(self, path: str | Path, *, threads: int = 1) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(
                f"model file {str(path)!r} not found; give a path to a .ts file (--model)"
            )
        self._bytes = self.path.read_bytes()
        torch = _torch()
        if threads > 0 and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        self.module = _jit_load(self._bytes, str(self.path))
        self.info = self._inspect(self.module)
        self._torch = torch
        self.validate()

    def _inspect(self, module: Any) -> ModelInfo:
        try:
            c = read_contract(module, self.path)
        except ContractError as exc:
            raise ModelError(str(exc)) from None
        return ModelInfo(
            path=str(self.path),
            name=c.name,
            samplerate=c.samplerate,
            latent_size=c.latent_size,
            ratio=c.ratio,
            channels=c.channels,
            methods=c.methods,
            delay_samples=c.delay_samples,
            card=c.card,
            latent=c.latent,
            encode_ratio=(
                max(1, c.encode.out_ratio // max(1, c.encode.in_ratio))
                if c.encode is not None
                else (c.ratio if c.has_encode else None)
            ),
            encode_channels=(
                c.encode.in_channels if c.encode is not None and c.encode.in_channels > 0 else None
            ),
        )

    def validate(self) -> None:
        """Decode zeros (two frames, then one) and check the shapes; this also warms up."""
        info = self.info
        for n_frames in (2, 1, 1):
            z = np.zeros((info.latent_size, n_frames), dtype=np.float32)
            try:
                y = self._decode_tensor(z)
            except Exception as exc:
                msg = str(exc).strip().splitlines()
                raise ModelError(
                    f"{self.path.name}: decode of zeros, shape (1, {info.latent_size}, {n_frames}), "
                    f"failed: {msg[-1] if msg else type(exc).__name__}"
                ) from None
            want = (info.channels, n_frames * info.ratio)
            if y.shape != want:
                raise ModelError(
                    f"{self.path.name}: decode returned shape {tuple(y.shape)} for {n_frames} frame(s), "
                    f"expected (channels, frames*ratio) = {want} from decode_params"
                )
        # No reload here: live playing starts from this warmed-up state (it decoded zeros, which
        # is harmless), and offline renders take a fresh() copy anyway.
        self._alloc_frame()
        self.warmup()

    def warmup(self, n_calls: int | None = None) -> None:
        """Decode zeros a few times: TorchScript's profiling executor optimises on the first
        calls (160–400 ms on big models), which must not happen on the audio path. It also
        flushes the streaming caches: RAVE's exporter saves them filled by its own test calls
        on random input, so warm up for longer than the model's delay (8 frames if unknown)."""
        if n_calls is None:
            delay = self.info.delay_samples
            n_calls = max(3, -(-delay // self.info.ratio) + 1) if delay is not None else 8
        z = np.zeros((self.info.latent_size, 1), dtype=np.float32)
        for _ in range(n_calls):
            self._decode_tensor(z)

    def _decode_tensor(self, z: np.ndarray) -> np.ndarray:
        torch = _torch()
        with torch.inference_mode():
            y = self.module.decode(torch.from_numpy(z)[None])
        return y[0].numpy()

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Decode latents to audio. Runs on the decode worker.

        Parameters
        ----------
        z : ndarray, shape (latent_size, n_frames), float32

        Returns
        -------
        ndarray, shape (channels, n_frames * ratio), float32
        """
        return self._decode_tensor(np.ascontiguousarray(z, dtype=np.float32))

    def decode_frame(self, z: np.ndarray) -> np.ndarray:
        """Decode one frame with as little Python around torch as possible. Decode worker.

        The input tensor is reused (copied into, not allocated) and autograd is off for the
        calling thread, which the decode worker sets once (:meth:`prepare_thread`).

        Parameters
        ----------
        z : ndarray, shape (latent_size,)

        Returns
        -------
        ndarray, shape (channels, ratio), float32 (a view: copy before the next call)
        """
        buf = self._frame_in
        buf[:, 0] = z
        return self.module.decode(self._frame_in_t)[0].numpy()

    @staticmethod
    def prepare_thread() -> None:
        """Turn autograd off for the calling thread (the decode worker): no graph, no cost."""
        _torch().set_grad_enabled(False)

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """Encode audio, shape (channels, n_samples) at the model rate, to (latent_size, n_frames)."""
        if not self.info.has_encode:
            raise ModelError(f"{self.path.name} has no 'encode' method (decoder-only model)")
        torch = _torch()
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
            z = self.module.encode(x)
        return z[0].numpy()

    def encode_frame(self, audio: np.ndarray) -> np.ndarray:
        """Encode one frame of audio with the streaming state kept. Decode worker.

        Parameters
        ----------
        audio : ndarray, shape (channels, encode_ratio), float32, at the model rate

        Returns
        -------
        ndarray, shape (latent_size_encoded,), float32 (a view: copy before the next call)
        """
        # A new tensor per call, not a reused buffer: a streaming encoder may keep a view of
        # its input as its cache (measured: the default model's encode then drifted by 1e-2).
        x = self._torch.from_numpy(np.array(audio, dtype=np.float32, order="C"))[None]
        return self.module.encode(x)[0, :, -1].numpy()

    def reset(self) -> None:
        """Fresh streaming state: reload the module from memory (streaming caches live inside it)."""
        self.module = _jit_load(self._bytes, str(self.path))
        self._alloc_frame()

    def _alloc_frame(self) -> None:
        torch = _torch()
        self._frame_in_t = torch.zeros(1, self.info.latent_size, 1)
        self._frame_in = self._frame_in_t.numpy()[0]

    def release(self) -> None:
        """Drop the loaded module (its memory) and keep the file's bytes, so :meth:`fresh`
        can still bring the model back (the loop keeps the previous model this way, to fall
        back to)."""
        self.module = None
        self._frame_in_t = None
        self._frame_in = None

    def fresh(self) -> ModelRuntime:
        """Another runtime of the same model with its own streaming state (no disk read)."""
        other = object.__new__(ModelRuntime)
        other.path = self.path
        other._bytes = self._bytes
        other._torch = self._torch
        other.module = _jit_load(self._bytes, str(self.path))
        other.info = self.info
        other._alloc_frame()
        other.warmup()
        return other

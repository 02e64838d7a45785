"""Model runtime: load, validate and run TorchScript models with the nn~ interface.

A model is a TorchScript module with ``decode`` (and usually ``encode``, ``forward``), each
method ``m`` described by a buffer ``m_params = [in_channels, in_ratio, out_channels,
out_ratio]``, and its sample rate in ``sr`` (RAVE), ``sampling_rate`` (older RAVE) or
``get_sample_rate()`` (nn-tilde 1.6). Models made by RAVE's ``export --streaming`` and by
``python -m models.export`` both load here.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from instrument.engine.backends import (
    BACKENDS,
    Backend,
    OnnxBackend,
    OnnxTwin,
    TorchBackend,
    TwinError,
    check_twin,
    jit_load,
)
from instrument.errors import ModelError
from models.nn import ContractError, LatentCard, noise_free_decode, read_contract, twin_path


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


_THREAD = threading.local()  # per-thread torch settings (:meth:`ModelRuntime.prepare_thread`)


class ModelRuntime:
    """A loaded, validated model. Not thread-safe: one runtime per decode worker.

    The TorchScript file is the model (its contract is read from it, ``encode`` always runs
    on it); ``decode`` runs on a :mod:`backend <instrument.engine.backends>`: TorchScript, or
    onnxruntime when an ONNX twin beside the file passed its check.

    Parameters
    ----------
    path : str or Path
        TorchScript file.
    threads : int
        Intra-op threads of the decode (1 by default: measured, 2 threads with a busy neighbour
        pushed decode p99 from ≤ 22 ms to 0.1–0.9 s). 0 means *auto*: 1, or 2 when one frame
        on 1 thread takes more than half its budget (timed at load; see :meth:`auto_threads`).
    backend : {"auto", "torch", "onnx"}
        ``auto``: the ONNX twin when there is one and it matches, else TorchScript.
        ``onnx``: the twin or a :class:`ModelError` saying why not.
    """

    def __init__(self, path: str | Path, *, threads: int = 1, backend: str = "auto") -> None:
        self.path = Path(path)
        if backend not in BACKENDS:
            raise ModelError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
        if not self.path.is_file():
            raise ModelError(
                f"model file {str(path)!r} not found; give a path to a .ts file (--model)"
            )
        self.requested_backend = backend
        self.requested_threads = threads
        self._bytes = self.path.read_bytes()
        torch = _torch()
        if torch.get_num_threads() != max(threads, 1):
            torch.set_num_threads(max(threads, 1))
        self.threads_note = f"{max(threads, 1)} thread{'s' if threads > 1 else ''}"
        self.twin_diff = float("nan")
        self._module: Any = jit_load(self._bytes, str(self.path))
        self.info = self._inspect(self._module)
        self._torch = torch
        self.validate()
        self.backend: Backend = TorchBackend(self._module, self.info.latent_size, self._reload)
        self.backend_note = "TorchScript"
        self._choose_backend(backend, max(threads, 1))
        self.warmup()
        if threads == 0:
            self.auto_threads()

    # --- loading ----------------------------------------------------------------------------
    def _reload(self) -> Any:
        return jit_load(self._bytes, str(self.path))

    @property
    def module(self) -> Any:
        """The TorchScript module (``encode`` runs on it). Copies made by :meth:`fresh` on the
        ONNX backend load theirs on first use: most never encode."""
        if self._module is None:
            self._module = self._reload()
        return self._module

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
        """Decode zeros (two frames, then one) with TorchScript and check the shapes."""
        info = self.info
        for n_frames in (2, 1, 1):
            z = np.zeros((info.latent_size, n_frames), dtype=np.float32)
            try:
                y = self._torch_decode(z)
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

    def _torch_decode(self, z: np.ndarray) -> np.ndarray:
        torch = _torch()
        with torch.inference_mode():
            y = self._module.decode(torch.from_numpy(z)[None])
        return y[0].numpy()

    def _choose_backend(self, wanted: str, threads: int) -> None:
        """Put the ONNX twin in charge of decode when asked for (or ``auto``) and it checks out;
        otherwise keep TorchScript and say why in :attr:`backend_note`."""
        if wanted == "torch":
            self.backend_note = "TorchScript (--backend torch)"
            return
        twin_file = twin_path(self.path)
        if twin_file is None:
            why = f"no ONNX twin {self.path.with_suffix('.onnx').name} beside the model"
            if wanted == "onnx":
                raise ModelError(
                    f"--backend onnx: {why}",
                    fix="export one with `python -m models.onnx_export MODEL.ts`, or use "
                    "--backend auto (TorchScript)",
                )
            self.backend_note = f"TorchScript ({why})"
            return
        try:
            twin = self._load_twin(twin_file, threads)
        except TwinError as exc:
            why = f"ONNX twin {twin_file.name} refused: {exc}"
            if wanted == "onnx":
                raise ModelError(f"--backend onnx: {why}", fix="or use --backend auto") from None
            self.backend_note = f"TorchScript ({why})"
            return
        self.backend = OnnxBackend(twin, seed=int(np.random.randint(2**31)))
        self.backend_note = f"onnx (twin {twin_file.name} checked: max diff {self.twin_diff:.1e})"

    def _load_twin(self, twin_file: Path, threads: int) -> OnnxTwin:
        info = self.info
        twin = OnnxTwin(
            twin_file,
            latent_size=info.latent_size,
            ratio=info.ratio,
            channels=info.channels,
            threads=threads,
        )
        reference_module = self._reload()  # a fresh state, as the twin's
        noise_free = noise_free_decode(reference_module)
        if noise_free is None:
            raise TwinError(
                "the TorchScript model has no model.decode(z, add_noise) to compare it "
                "without noise (only Sillage exports have twins)"
            )
        torch = _torch()

        def reference(z: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return noise_free(torch.from_numpy(np.ascontiguousarray(z))[None], False)[0].numpy()

        self.twin_diff = check_twin(twin, reference, info.latent_size)
        return twin

    # --- decoding ---------------------------------------------------------------------------
    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def threads(self) -> int:
        return self.backend.threads

    def warmup(self, n_calls: int | None = None) -> None:
        """Decode zeros a few times: TorchScript's profiling executor optimises on the first
        calls (160–400 ms on big models), and onnxruntime allocates on its first; neither may
        happen on the audio path. It also flushes the streaming caches: RAVE's exporter saves
        them filled by its own test calls on random input, so warm up for longer than the
        model's delay (8 frames if unknown)."""
        if n_calls is None:
            delay = self.info.delay_samples
            n_calls = max(3, -(-delay // self.info.ratio) + 1) if delay is not None else 8
        z = np.zeros(self.info.latent_size, dtype=np.float32)
        torch = _torch()
        with torch.inference_mode():
            for _ in range(n_calls):
                self.backend.decode_frame(z)

    def time_frame_s(self, n_calls: int = 8) -> float:
        """Median seconds per :meth:`decode_frame` on zeros (this state; after warm-up)."""
        z = np.zeros(self.info.latent_size, dtype=np.float32)
        times = []
        torch = _torch()
        with torch.inference_mode():
            for _ in range(n_calls):
                t0 = time.perf_counter()
                self.backend.decode_frame(z)
                times.append(time.perf_counter() - t0)
        return float(np.median(times))

    def auto_threads(self) -> None:
        """``--threads auto``: stay on 1 thread unless one frame takes more than half its
        budget there and the machine has a second core; then decode on 2, if 2 are measurably
        faster (a second core busy with something else makes them slower: measured 0.36×)."""
        import os

        t1 = self.time_frame_s()
        self.threads_note = (
            f"1 thread ({1e3 * t1:.2f} ms of a {1e3 * self.info.frame_s:.2f} ms frame)"
        )
        if t1 <= 0.5 * self.info.frame_s or (os.cpu_count() or 1) < 2:
            return
        self.set_threads(2)
        t2 = self.time_frame_s()
        if t2 > 0.8 * t1:  # a busy second core: 2 threads would only contend (measured)
            self.set_threads(1)
            self.threads_note = (
                f"1 thread ({1e3 * t1:.2f} ms of a {1e3 * self.info.frame_s:.2f} ms frame; "
                f"2 threads were not faster: {1e3 * t2:.2f} ms)"
            )
            return
        self.threads_note = (
            f"2 threads ({1e3 * t1:.2f} ms on 1 thread > half the {1e3 * self.info.frame_s:.2f} ms "
            f"frame; {1e3 * t2:.2f} ms on 2)"
        )

    def set_threads(self, threads: int) -> None:
        """Decode on ``threads`` intra-op threads from now on (same streaming state for torch;
        the ONNX session is rebuilt, its state carried over)."""
        if isinstance(self.backend, OnnxBackend):
            old = self.backend
            twin = OnnxTwin(
                old.twin.path,
                latent_size=self.info.latent_size,
                ratio=self.info.ratio,
                channels=self.info.channels,
                threads=threads,
            )
            new = OnnxBackend(twin, seed=old.seed)
            new._feed.update({k: v for k, v in old._feed.items() if k in twin.state_names})
            self.backend = new
        else:
            self._torch.set_num_threads(threads)
            self.backend.threads = threads
        self.warmup(3)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Decode latents to audio. Runs on the decode worker.

        Parameters
        ----------
        z : ndarray, shape (latent_size, n_frames), float32

        Returns
        -------
        ndarray, shape (channels, n_frames * ratio), float32
        """
        return self.backend.decode(np.ascontiguousarray(z, dtype=np.float32))

    def decode_frame(self, z: np.ndarray) -> np.ndarray:
        """Decode one frame with as little Python around the backend as possible. Decode worker.

        The input buffer is reused (copied into, not allocated) and autograd is off for the
        calling thread, which the decode worker sets once (:meth:`prepare_thread`).

        Parameters
        ----------
        z : ndarray, shape (latent_size,)

        Returns
        -------
        ndarray, shape (channels, ratio), float32 (a view: copy before the next call)
        """
        return self.backend.decode_frame(z)

    @staticmethod
    def prepare_thread() -> None:
        """Put the calling thread (the decode worker) in inference mode for good: no graph, no
        version counters, no view tracking. Set once, not entered per frame; measured on the
        default model, a TorchScript frame takes 370 µs here against 435 µs with autograd only
        turned off (``set_grad_enabled(False)``, the old setting)."""
        torch = _torch()
        torch.set_grad_enabled(False)
        if getattr(_THREAD, "inference", None) is None:
            # The guard restores the thread's mode when it is freed: a thread-local keeps it
            # alive until the thread ends, and it is freed on that thread.
            mode = torch.inference_mode()
            mode.__enter__()
            _THREAD.inference = mode

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

    def warmup_encode(self, n_calls: int | None = None) -> None:
        """Encode silence a few frames: the encoder's streaming caches, like the decoder's
        (:meth:`warmup`), may hold what an exporter's test calls left there (RAVE's do), and
        its first calls are TorchScript's slow profiling runs. Off the decode worker."""
        info = self.info
        ratio = info.encode_ratio or info.ratio
        if n_calls is None:
            delay = info.delay_samples
            n_calls = max(3, -(-delay // ratio) + 1) if delay is not None else 8
        silence = np.zeros((info.encode_channels or info.channels, ratio), dtype=np.float32)
        torch = self._torch
        with torch.inference_mode():
            for _ in range(n_calls):
                self.module.encode(torch.from_numpy(silence.copy())[None])

    def fresh_encoder(self) -> ModelRuntime:
        """A :meth:`fresh` copy for listening, its encoder warmed up on silence (so a render
        starts from the same state whatever the model's file held). Off the decode worker."""
        other = self.fresh(encoder=True)
        other.warmup_encode()
        return other

    def reset(self) -> None:
        """Fresh streaming state (TorchScript: reload the module from memory, its caches live
        inside it; ONNX: zero the explicit state)."""
        self.backend = self.backend.fresh()
        self._module = getattr(self.backend, "module", None)

    def release(self) -> None:
        """Drop the loaded module (its memory) and keep the file's bytes, so :meth:`fresh`
        can still bring the model back (the loop keeps the previous model this way, to fall
        back to). An ONNX copy keeps its backend: the session is shared, its state small."""
        self._module = None
        if isinstance(self.backend, TorchBackend):
            self.backend.module = None

    def fresh(self, *, encoder: bool = False) -> ModelRuntime:
        """Another runtime of the same model, same backend, with its own streaming state (no
        disk read; an ONNX copy shares the session). ``encoder``: load the TorchScript module
        now, which an ONNX copy otherwise loads on its first ``encode`` (pass it for a copy
        that will encode on the decode worker)."""
        other = object.__new__(ModelRuntime)
        other.__dict__.update(self.__dict__)
        other.backend = self.backend.fresh()
        other._module = getattr(other.backend, "module", None)
        if encoder:
            _ = other.module
        other.warmup()
        return other

"""Decode backends: what runs a model's ``decode``, one frame per call.

The model file is TorchScript (nn~'s format), so :class:`TorchBackend` is always there.
:class:`OnnxBackend` is the fast path for models that ship an ONNX *twin* beside the ``.ts``
(``MODEL.onnx``, written by :mod:`models.onnx_export`): the same decoder with its streaming
state as explicit inputs and outputs. Measured on the default model, onnxruntime decodes a
frame 2–4× faster than TorchScript (``benchmarks/bench_backends.py``).

A twin is trusted only after :func:`check_twin` decoded the same frames through both and found
them equal within :data:`TWIN_ATOL` (noise branches off on both sides: noise is random by
design). The twin's random ops are turned into inputs at load (:func:`_noise_as_inputs`), so
its noise comes from a seeded numpy generator per copy: offline renders stay reproducible and
each ``fresh()`` copy (a voice) gets noise of its own.

A backend holds one streaming state; ``fresh()`` gives another with its own state (a voice,
an offline render, an encoder's copy) and shares what is read-only (the ONNX session).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from instrument.errors import ModelError

BACKENDS = ("auto", "torch", "onnx")
"""``--backend`` choices. ``auto``: the ONNX twin when there is one and it passes the check,
else TorchScript (and the status line says why)."""

TWIN_ATOL = 1e-4
"""Largest |TorchScript − ONNX| sample difference a twin may show on the check frames (noise
off; audio in ±1). Measured: 2.7e-7 on the first (VAE) default model, 2.1e-7 on the DDSP
default here (1.1e-6 on other frames, models/default/README.md)."""

TWIN_CHECK_FRAMES = 24
"""Frames of seeded random latents the twin check decodes (after a few frames of zeros)."""


class TwinError(ModelError):
    """An ONNX twin that cannot be used; the message says why. TorchScript still works."""


class Backend(Protocol):
    """One streaming decoder. Not thread-safe: one per decode worker (or voice)."""

    name: str
    threads: int

    def decode_frame(self, z: np.ndarray) -> np.ndarray:
        """(latent_size,) → (channels, ratio) float32, a view valid until the next call."""
        ...

    def decode(self, z: np.ndarray) -> np.ndarray:
        """(latent_size, n_frames) float32 → (channels, n_frames * ratio) float32."""
        ...

    def fresh(self) -> Backend:
        """Another backend of the same model with a fresh streaming state."""
        ...


def _torch() -> Any:
    import torch

    return torch


def jit_load(data: bytes, label: str) -> Any:
    """``torch.jit.load`` from bytes, on CPU; a file that is not TorchScript is a ModelError."""
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


# ------------------------------------------------------------------------------------------
# TorchScript
# ------------------------------------------------------------------------------------------
class TorchBackend:
    """The TorchScript module's own ``decode``; its streaming caches live inside the module."""

    name = "torch"

    def __init__(self, module: Any, latent_size: int, reload: Callable[[], Any]) -> None:
        self.module = module
        self.latent_size = latent_size
        self._reload = reload
        torch = _torch()
        self.threads = int(torch.get_num_threads())
        self._in_t = torch.zeros(1, latent_size, 1)
        self._in = self._in_t.numpy()[0]

    def decode_frame(self, z: np.ndarray) -> np.ndarray:
        """One frame, the input tensor reused. Decode worker (autograd off on this thread)."""
        self._in[:, 0] = z
        return self.module.decode(self._in_t)[0].numpy()

    def decode(self, z: np.ndarray) -> np.ndarray:
        torch = _torch()
        with torch.inference_mode():
            y = self.module.decode(torch.from_numpy(np.ascontiguousarray(z, np.float32))[None])
        return y[0].numpy()

    def fresh(self) -> TorchBackend:
        return TorchBackend(self._reload(), self.latent_size, self._reload)


# ------------------------------------------------------------------------------------------
# onnxruntime
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Noise:
    """A random op of the twin, now a graph input the backend fills each frame."""

    name: str
    shape: tuple[int, ...]
    kind: str  # "uniform" or "normal"
    low: float
    high: float

    @property
    def off(self) -> float:
        """The value that turns the noise off: the middle of the distribution (a Sillage noise
        branch is ``u * 2 - 1`` or ``mean + sd * n``, so the middle makes it exactly 0)."""
        return (self.low + self.high) / 2 if self.kind == "uniform" else self.low


def _noise_as_inputs(model: Any) -> list[_Noise]:
    """Replace every RandomUniform(Like)/RandomNormal(Like) node of ``model`` (an onnx
    ModelProto, edited in place) by a graph input of the same static shape."""
    import onnx
    from onnx import TensorProto, helper, shape_inference

    graph = model.graph
    randoms = [n for n in graph.node if n.op_type.startswith(("RandomUniform", "RandomNormal"))]
    if not randoms:
        return []
    inferred = shape_inference.infer_shapes(model)
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = tuple(int(d.dim_value) for d in dims)
    noises = []
    for node in randoms:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type.endswith("Like"):
            shape = shapes.get(node.input[0])
        else:
            shape = tuple(int(v) for v in attrs.get("shape", ()))
        if not shape:
            raise TwinError(f"its random op {node.name or node.op_type} has no static shape")
        if int(attrs.get("dtype", TensorProto.FLOAT)) != TensorProto.FLOAT:
            raise TwinError(f"its random op {node.name or node.op_type} is not float32")
        uniform = node.op_type.startswith("RandomUniform")
        noise = _Noise(
            name=node.output[0],  # the input takes the op's output name: no consumer changes
            shape=shape,
            kind="uniform" if uniform else "normal",
            low=float(attrs.get("low", 0.0) if uniform else attrs.get("mean", 0.0)),
            high=float(attrs.get("high", 1.0) if uniform else attrs.get("scale", 1.0)),
        )
        graph.node.remove(node)
        graph.input.append(
            helper.make_tensor_value_info(noise.name, TensorProto.FLOAT, list(shape))
        )
        noises.append(noise)
    onnx.checker.check_model(model)
    return noises


class OnnxTwin:
    """An ONNX twin loaded into one onnxruntime session (shared by every copy; ``run`` is
    thread-safe), with its inputs checked against the model's contract.

    Parameters
    ----------
    path : Path
        The ``.onnx`` file.
    latent_size, ratio, channels : int
        From the TorchScript model's ``decode_params``: the twin must match them.
    threads : int
        onnxruntime intra-op threads. 1: the decode runs on the calling thread (the decode
        worker) with no pool; above 1 the pool threads never spin (they would steal a core
        from the audio and the control process on a 2-core machine).
    """

    def __init__(
        self, path: Path, *, latent_size: int, ratio: int, channels: int, threads: int = 1
    ) -> None:
        try:
            import onnx
            import onnxruntime as ort
        except ImportError as exc:
            raise TwinError(f"{exc.name} is not installed (pip install onnx onnxruntime)") from None
        self.path = path
        self.threads = max(1, threads)
        try:
            model = onnx.load_from_string(path.read_bytes())
        except Exception as exc:
            raise TwinError(f"it is not a readable ONNX file ({type(exc).__name__})") from None
        self.noises = _noise_as_inputs(model)
        noise_names = {n.name for n in self.noises}
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TwinError(f"onnxruntime cannot load it ({first})") from None
        inputs = [i for i in self.session.get_inputs() if i.name not in noise_names]
        outputs = self.session.get_outputs()
        want_z = [1, latent_size, 1]
        if not inputs or list(inputs[0].shape) != want_z:
            got = list(inputs[0].shape) if inputs else None
            raise TwinError(f"its first input has shape {got}, expected {want_z} (one frame)")
        want_y = [1, channels, ratio]
        if list(outputs[0].shape) != want_y:
            raise TwinError(
                f"its first output has shape {list(outputs[0].shape)}, expected {want_y}"
            )
        if len(outputs) != len(inputs):
            raise TwinError(
                f"it has {len(inputs) - 1} state inputs but {len(outputs) - 1} state outputs"
            )
        self.z_name = inputs[0].name
        self.state_names = [i.name for i in inputs[1:]]
        self.state_shapes = [tuple(int(d) for d in i.shape) for i in inputs[1:]]
        self.output_names = [o.name for o in outputs]


class OnnxBackend:
    """Decode frame by frame with onnxruntime, carrying the explicit state between calls.

    Parameters
    ----------
    twin : OnnxTwin
    seed : int
        Seeds this copy's noise (numpy PCG64).
    """

    name = "onnx"

    def __init__(self, twin: OnnxTwin, seed: int = 0) -> None:
        self.twin = twin
        self.threads = twin.threads
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self.noise_off = False  # the twin check decodes with the noise branches off
        self._z = np.zeros(twin.session.get_inputs()[0].shape, dtype=np.float32)
        self._feed: dict[str, np.ndarray] = {twin.z_name: self._z}
        for name, shape in zip(twin.state_names, twin.state_shapes, strict=True):
            self._feed[name] = np.zeros(shape, dtype=np.float32)
        self._noise = [(n, np.empty(n.shape, dtype=np.float32)) for n in twin.noises]
        for n, buf in self._noise:
            self._feed[n.name] = buf

    def _fill_noise(self) -> None:
        for n, buf in self._noise:
            if self.noise_off:
                buf.fill(n.off)
            elif n.kind == "uniform":
                self._rng.random(dtype=np.float32, out=buf)
                if n.low != 0.0 or n.high != 1.0:
                    buf *= n.high - n.low
                    buf += n.low
            else:
                self._rng.standard_normal(dtype=np.float32, out=buf)
                buf *= n.high
                buf += n.low

    def decode_frame(self, z: np.ndarray) -> np.ndarray:
        """One frame. Decode worker: onnxruntime releases the GIL while it computes."""
        self._z[0, :, 0] = z
        self._fill_noise()
        twin = self.twin
        out = twin.session.run(twin.output_names, self._feed)
        feed = self._feed
        for name, state in zip(twin.state_names, out[1:], strict=True):
            feed[name] = state
        return out[0][0]

    def decode(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float32)
        return np.concatenate([self.decode_frame(z[:, i]) for i in range(z.shape[1])], axis=-1)

    def fresh(self, seed: int | None = None) -> OnnxBackend:
        """A new state and noise of its own: seeded from numpy's global generator unless given
        (which an offline render seeds), so voices do not share their noise."""
        return OnnxBackend(self.twin, int(np.random.randint(2**31)) if seed is None else seed)


def check_twin(
    twin: OnnxTwin, reference: Callable[[np.ndarray], np.ndarray], latent_size: int
) -> float:
    """Decode the same frames through the twin and ``reference`` (the TorchScript model's
    noise-free decode on a fresh state, one frame per call); return the largest difference.

    Raises
    ------
    TwinError
        When the difference exceeds :data:`TWIN_ATOL`, or either side fails.
    """
    rng = np.random.default_rng(1234)
    frames = np.zeros((latent_size, 4 + TWIN_CHECK_FRAMES), dtype=np.float32)
    frames[:, 4:] = rng.normal(scale=1.0, size=(latent_size, TWIN_CHECK_FRAMES))
    backend = OnnxBackend(twin)
    backend.noise_off = True
    worst = 0.0
    for i in range(frames.shape[1]):
        try:
            a = np.asarray(reference(frames[:, i : i + 1]), dtype=np.float64)
            b = np.asarray(backend.decode_frame(frames[:, i]), dtype=np.float64)
        except Exception as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise TwinError(f"decoding the check frames failed ({first})") from None
        if a.shape != b.shape or not np.all(np.isfinite(b)):
            raise TwinError(f"frame {i}: shape {b.shape} or non-finite output, expected {a.shape}")
        worst = max(worst, float(np.abs(a - b).max()))
    if not worst <= TWIN_ATOL:
        raise TwinError(
            f"it differs from the TorchScript model by up to {worst:.3g} on the same frames "
            f"(tolerance {TWIN_ATOL:g}, noise off); re-export it from this model with "
            "`python -m models.onnx_export MODEL.ts`"
        )
    return worst

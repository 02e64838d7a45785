"""ONNX export of the streaming decoder with explicit state, and a small onnxruntime player.

TorchScript keeps convolution caches inside the module (what nn~ needs). ONNX graphs are
stateless, so here every cache is an input and its update an output:
``(z, state_0 … state_n) → (audio, new_state_0 … new_state_n)``. The same
:class:`~models.layers.CachedConv1d` code runs in both, switched to mode 2 (explicit state).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.config import ModelConfig
from models.ddsp import DDSP, HarmonicNoiseSynth
from models.layers import CachedConv1d, cached_convs
from models.vae import VAE


class ExplicitStateDecoder(nn.Module):
    """Wraps :meth:`VAE.decode` (or :meth:`DDSP.decode <models.ddsp.DDSP.decode>`) so caches
    flow in and out as tensors (for tracing). For the DDSP family the last state is the
    synthesiser's (phase, previous controls, noise tail), after the decoder's caches."""

    def __init__(self, model: VAE | DDSP) -> None:
        super().__init__()
        self.model = model
        self.convs: list[CachedConv1d] = cached_convs(model.decoder)
        self.synth: HarmonicNoiseSynth | None = None
        if isinstance(model, DDSP):
            self.synth = model.synth
            self.synth.mode = 2
            self.synth.noise_path = 2  # ONNX has no rfft: filter by convolution
        else:
            self.convs += cached_convs(model.pqmf.synthesis_conv)
        for conv in self.convs:
            conv.mode = 2

    def initial_state(self, batch_size: int = 1) -> list[torch.Tensor]:
        """Zero caches: shapes (batch, in_channels, pad_left) in call order (then, for the
        DDSP family, the synthesiser's state (batch, state_size))."""
        states = [torch.zeros(batch_size, c.in_channels, c.pad_left) for c in self.convs]
        if self.synth is not None:
            states.append(self.synth.initial_state(batch_size))
        return states

    def forward(self, z: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = len(self.convs)
        for conv, s in zip(self.convs, states[:n], strict=True):
            conv.state_in = s
        if self.synth is not None:
            self.synth.state_in = states[n]
        y = self.model.decode(z, True)
        out = [conv.state_out for conv in self.convs]
        if self.synth is not None:
            out.append(self.synth.state_out)
        return (y, *out)

    def restore(self) -> None:
        """Back to zero-padding mode (training / whole-sequence decode)."""
        for conv in self.convs:
            conv.mode = 0
        if self.synth is not None:
            self.synth.mode = 0
            self.synth.noise_path = 0


def export_onnx(model: VAE | DDSP, cfg: ModelConfig, path: str | Path | None = None) -> bytes:
    """Export the decoder (one frame per call, batch 1) to ONNX; returns the bytes too."""
    if not cfg.causal:
        raise ValueError("ONNX streaming export needs a causal model")
    model = model.eval()
    wrapper = ExplicitStateDecoder(model).eval()
    states = wrapper.initial_state()
    z = torch.zeros(1, cfg.latent_size, 1)
    names_in = ["z"] + [f"state_{i}" for i in range(len(states))]
    names_out = ["audio"] + [f"new_state_{i}" for i in range(len(states))]
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # legacy exporter deprecation + tracer notes
        torch.onnx.export(
            wrapper,
            (z, *states),
            buf,  # type: ignore[arg-type]  # BytesIO works; the stub says path only
            input_names=names_in,
            output_names=names_out,
            opset_version=17,
            dynamo=False,
        )
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    wrapper.restore()
    return data


class OnnxStreamingDecoder:
    """Decode frame by frame with onnxruntime, carrying the caches between calls.

    Parameters
    ----------
    onnx_bytes : bytes
        Output of :func:`export_onnx`.
    threads : int
        onnxruntime intra-op threads.
    """

    def __init__(self, onnx_bytes: bytes, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.shapes = [list(i.shape) for i in self.session.get_inputs()[1:]]
        self.reset()

    def reset(self) -> None:
        self.states = [np.zeros(s, dtype=np.float32) for s in self.shapes]

    def decode(self, z: np.ndarray) -> np.ndarray:
        """One frame. Runs on the decode worker.

        Parameters
        ----------
        z : ndarray, shape (1, latent_size, 1), float32

        Returns
        -------
        ndarray, shape (1, channels, ratio), float32
        """
        feed: dict[str, Any] = dict(zip(self.inputs, [z, *self.states], strict=True))
        out = self.session.run(self.outputs, feed)
        self.states = out[1:]
        return out[0]


def write_twin(model_path: str | Path, out: str | Path | None = None) -> Path:
    """Write the ONNX twin of a Sillage TorchScript export beside it (``MODEL.onnx``).

    The config and weights come from the ``.ts`` itself (:func:`models.export.load_weights`),
    so the twin decodes exactly what the file does; the engine checks that at load
    (``instrument/engine/backends.py``) and plays the twin with onnxruntime.
    """
    from models.export import load_weights
    from models.families import build_model

    cfg, weights, _ = load_weights(model_path)
    model = build_model(cfg)
    model.load_state_dict(weights)
    target = Path(out) if out is not None else Path(model_path).with_suffix(".onnx")
    export_onnx(model, cfg, target)  # type: ignore[arg-type]  # a VAE or a DDSP
    return target


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m models.onnx_export",
        description="Write MODEL.onnx, the explicit-state ONNX twin of a Sillage export MODEL.ts "
        "(the engine plays it with onnxruntime after checking it against the .ts).",
    )
    parser.add_argument("model", help="a .ts file written by python -m models.export")
    parser.add_argument("--out", default=None, help="default: MODEL.onnx beside the model")
    args = parser.parse_args(argv)
    print(write_twin(args.model, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

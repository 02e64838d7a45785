"""Small TorchScript models with the nn~ interface, scripted for tests.

These are real TorchScript files in the RAVE export format (methods, ``*_params`` buffers,
``sr``), small enough to build in a second. ``OscModel`` is a streaming oscillator: its phase
lives in a buffer, like a streaming RAVE export's convolution caches.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
from torch import nn


class OscModel(nn.Module):
    """decode: dim 0 → pitch (octaves/2 around 220 Hz), dim 1 → amplitude, dim 2 → brightness."""

    def __init__(self, latent_size: int = 4, ratio: int = 64, sr: int = 48000, channels: int = 1):
        super().__init__()
        self.sr = sr
        self.latent_size = latent_size
        self.ratio = ratio
        self.channels = channels
        self.register_buffer("decode_params", torch.tensor([latent_size, ratio, channels, 1]))
        self.register_buffer("encode_params", torch.tensor([channels, 1, latent_size, ratio]))
        self.register_buffer("forward_params", torch.tensor([channels, 1, channels, 1]))
        self.register_buffer("phase", torch.zeros(1))

    @torch.jit.export
    def get_methods(self) -> list[str]:
        return ["encode", "decode", "forward"]

    @torch.jit.export
    def get_attributes(self) -> list[str]:
        return ["sr"]

    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self._osc(z)

    def _osc(self, z: torch.Tensor) -> torch.Tensor:
        pitch = z[:, 0].clamp(-6.0, 6.0)
        amp = 0.25 * torch.sigmoid(z[:, 1] * 2.0 + 1.0) if self.latent_size > 1 else 0.2 + 0 * pitch
        bright = torch.sigmoid(z[:, 2]) if self.latent_size > 2 else 0.5 + 0 * pitch
        f = 220.0 * torch.pow(2.0, pitch / 2.0)
        f = f.repeat_interleave(self.ratio, dim=-1)
        amp = amp.repeat_interleave(self.ratio, dim=-1)
        bright = bright.repeat_interleave(self.ratio, dim=-1)
        ph = self.phase[0] + torch.cumsum(2.0 * math.pi * f / self.sr, dim=-1)
        self.phase[0] = torch.remainder(ph[0, -1], 2.0 * math.pi)
        y = amp * (torch.sin(ph) + bright * 0.5 * torch.sin(3.0 * ph))
        out = y[:, None, :]
        if self.channels == 2:
            out = torch.cat([out, 0.8 * out], dim=1)
        return out

    @torch.jit.export
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        n = x.shape[-1] // self.ratio
        frames = x[:, 0, : n * self.ratio].reshape(b, n, self.ratio)
        rms = frames.pow(2).mean(-1).sqrt()
        z = torch.zeros(b, self.latent_size, n)
        z[:, 1] = torch.log(rms + 1e-4)
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class FaultModel(OscModel):
    """An ``OscModel`` whose latent dimension 3 injects faults, as real models fail:

    * ``0.5 < z3 < 1.5``: NaN out while it lasts (the state stays clean);
    * ``z3 > 1.5``: NaN enters the streaming state (the phase): NaN for good, until a fresh
      copy of the model (like a RAVE export whose convolution caches took a NaN);
    * ``-1.5 < z3 < -0.5``: ``decode`` raises while it lasts;
    * ``z3 < -1.5``: the model breaks: it raises on every call until a fresh copy.
    """

    def __init__(self, latent_size: int = 4, ratio: int = 64, sr: int = 48000, channels: int = 1):
        super().__init__(latent_size, ratio, sr, channels)
        self.register_buffer("broken", torch.zeros(1))

    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        poison = float(z[0, 3, -1])
        if poison < -1.5:
            self.broken[0] = 1.0
        if poison < -0.5 or bool(self.broken[0] > 0.5):
            raise RuntimeError("fault fixture: decode failed")
        if poison > 1.5:
            self.phase[0] = float("nan")
        y = self._osc(z)
        if poison > 0.5:
            y = y * float("nan")
        return y


class SlowModel(OscModel):
    """An ``OscModel`` that decodes slowly while latent dimension 3 is above 0.5: each frame
    then multiplies a 256×256 matrix ``int(40 * z3)`` times (tens of milliseconds on any
    CPU, far more than a 64-sample frame lasts), as a big model or a busy machine would."""

    def __init__(self, latent_size: int = 4, ratio: int = 64, sr: int = 48000, channels: int = 1):
        super().__init__(latent_size, ratio, sr, channels)
        self.register_buffer("work", torch.eye(256) * 0.999)

    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        slow = float(z[0, 3, -1])
        if slow > 0.5:
            acc = self.work
            for _ in range(int(40 * slow)):
                acc = torch.mm(acc, self.work)
            self.phase[0] = self.phase[0] + 0.0 * acc[0, 0]
        return self._osc(z)


class NoDecode(nn.Module):
    """Wrong interface: a TorchScript module with only forward."""

    def __init__(self) -> None:
        super().__init__()
        self.sr = 48000

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


def save(module: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(module).save(str(path))
    return path


def osc_model(path: Path, **kwargs: int) -> Path:
    return save(OscModel(**kwargs), path)


def fault_model(path: Path, **kwargs: int) -> Path:
    return save(FaultModel(**kwargs), path)


def slow_model(path: Path, **kwargs: int) -> Path:
    return save(SlowModel(**kwargs), path)


def wrong_interface_model(path: Path) -> Path:
    return save(NoDecode(), path)


def corrupt_model(path: Path) -> Path:
    path.write_bytes(b"PK\x03\x04 this is not a torchscript archive" + bytes(range(256)))
    return path

"""Offline render: the live decode loop, fed by a score, as fast as the CPU allows.

Same inputs and seed give a bit-identical file whatever the block size: events are applied
at model-frame boundaries by their score time, and the block size only slices the output.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from instrument.engine.listen import FileInput, Listener, make_encoder
from instrument.engine.loop import DecodeLoop
from instrument.engine.runtime import ModelRuntime
from instrument.errors import SillageError
from instrument.link.events import Event, ScoreSource
from instrument.metrics import Metrics, Reporter
from instrument.patch import Patch


def seed_everything(seed: int) -> None:
    """RAVE's decode fills latent dimensions it was not given with torch noise: seed it."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class BlockWriter:
    """Collects variable-size frames and hands out fixed-size blocks (what a device would pull)."""

    def __init__(self, blocksize: int, channels: int) -> None:
        self.blocksize = blocksize
        self._buf = np.zeros((0, channels), dtype=np.float32)

    def push(self, frame: np.ndarray) -> list[np.ndarray]:
        self._buf = np.concatenate([self._buf, frame]) if self._buf.size else frame
        out = []
        while self._buf.shape[0] >= self.blocksize:
            out.append(self._buf[: self.blocksize])
            self._buf = self._buf[self.blocksize :]
        return out


def render(
    runtime: ModelRuntime,
    patch: Patch,
    events: Iterable[Event],
    *,
    seconds: float,
    samplerate: int | None = None,
    blocksize: int = 256,
    seed: int = 0,
    reporter: Reporter | None = None,
    latent_map=None,
    metrics: Metrics | None = None,
    input_file: str | Path | None = None,
) -> np.ndarray:
    """Render ``seconds`` of audio; return shape (n_samples, channels), float32.

    A bad frame from the model (NaN, inf, an exception in ``decode``) is handled as live:
    replaced by silence, counted in ``metrics.bad_frames`` and reported; the render goes on.
    Anything else that raises ends it with :class:`RenderError`, which carries what was
    rendered so far.

    ``input_file``: the instrument listens to this file (read one model frame per decode
    frame, encoded by a ``fresh()`` copy of the model, mixed as the patch's ``[listen]``
    says). Raises :class:`~instrument.errors.AudioInputError` when it cannot be read.
    """
    seed_everything(seed)
    rt = runtime.fresh()
    listener = None
    if input_file is not None:
        source = FileInput(input_file, samplerate=rt.info.samplerate)
        listener = Listener(make_encoder(rt), source, seed=seed)
    loop = DecodeLoop(
        rt,
        patch,
        ScoreSource(events),
        samplerate=samplerate,
        reporter=reporter,
        latent_map=latent_map,
        metrics=metrics,
        listener=listener,
    )
    import torch

    total = round(seconds * loop.samplerate)
    writer = BlockWriter(blocksize, loop.out_channels)
    blocks: list[np.ndarray] = []
    n = 0
    with torch.no_grad():  # scoped: render() may run in a process that also trains
        try:
            while n < total:
                for block in writer.push(loop.step()):
                    blocks.append(block)
                    n += block.shape[0]
        except Exception as exc:
            partial = np.concatenate(blocks) if blocks else np.zeros((0, loop.out_channels))
            raise RenderError(
                f"the render stopped at {loop.t:.2f} s of {seconds:g} s: "
                f"{type(exc).__name__}: {exc}",
                partial=partial.astype(np.float32),
            ) from exc
    audio = (
        np.concatenate(blocks)[:total] if blocks else np.zeros((0, loop.out_channels), np.float32)
    )
    return audio


class RenderError(SillageError):
    """An offline render that could not finish; ``partial`` is the audio rendered before."""

    def __init__(self, message: str, *, partial: np.ndarray) -> None:
        super().__init__(message)
        self.partial = partial


def write_wav(path: str | Path, audio: np.ndarray, samplerate: int) -> None:
    """32-bit float WAV. scipy rather than soundfile here: libsndfile adds a PEAK chunk with a
    timestamp to float files, which would make two renders of the same score differ."""
    from scipy.io import wavfile

    wavfile.write(str(path), samplerate, np.ascontiguousarray(audio, dtype=np.float32))

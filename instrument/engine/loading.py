"""Loading a model and its patch, one way for live, offline and the CLI.

:func:`load_swap` builds what a ``/sillage/model`` or ``/sillage/patch`` asks for (and
:func:`load_start` what the engine starts with). Live, a side thread calls it and posts the
result in the :class:`Mailbox`, which the decode worker empties at a frame boundary; offline
and at start, it is called in line. Set-up happens here, never in the per-frame step.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from instrument.engine.runtime import ModelRuntime
from instrument.patch import Patch, PatchContext, load_patch

T = TypeVar("T")


@dataclass
class Swap:
    """A model and/or patch loaded off the decode worker, applied at a frame boundary."""

    runtime: ModelRuntime | None = None
    patch: Patch | None = None
    latent_map: Any = None
    #: Streams for a polyphonic keyboard's voices 1..N-1, made here rather than on the
    #: decode worker (a TorchScript load takes longer than a frame).
    voice_runtimes: list[ModelRuntime] | None = None
    reason: str = ""  # "" (asked for), "reset" (fresh state, same model), "fallback"
    #: the listener's copy of ``runtime`` when the engine listens (None: decoder-only model)
    encoder: ModelRuntime | None = None


class Mailbox(Generic[T]):
    """One slot between a loader thread and the decode worker.

    The decode worker only *tries* the lock (pedalboard's habit): it never waits, it takes the
    item at the next frame instead. A loader waits for the slot to be free, so two loads that
    finish in the same frame are both applied, in turn.
    """

    def __init__(self) -> None:
        self._item: T | None = None
        self._lock = threading.Lock()
        self._free = threading.Event()
        self._free.set()

    def post(self, item: T, timeout: float | None = None) -> bool:
        """Put ``item`` in the slot once it is free (loader thread); False on timeout."""
        while self._free.wait(timeout):
            with self._lock:
                if self._item is None:
                    self._item = item
                    self._free.clear()
                    return True
        return False

    def take(self) -> T | None:
        """The item, or None if there is none or the lock is busy. Decode worker: never waits."""
        if self._item is None:  # most frames; an item posted just now is taken next frame
            return None
        if not self._lock.acquire(blocking=False):
            return None
        try:
            item, self._item = self._item, None
        finally:
            self._lock.release()
        if item is not None:
            self._free.set()
        return item


def make_context(runtime: ModelRuntime) -> PatchContext:
    """What a patch may use from ``runtime`` while it is built."""
    info = runtime.info
    encode = None
    if info.has_encode:
        copies: list[ModelRuntime] = []

        def encode(audio: np.ndarray) -> np.ndarray:
            # its own copy, made on first use (most patches never encode): encoding must not
            # touch the playing model's streaming state, and start-up must not pay for it
            if not copies:
                copies.append(runtime.fresh())
            return copies[0].encode(audio)

    return PatchContext(
        latent_size=info.latent_size,
        samplerate=info.samplerate,
        encode=encode,
        latent=info.latent.to_table(),
    )


def load_patch_for(name: str | Path, runtime: ModelRuntime) -> Patch:
    """Load patch ``name`` built for ``runtime``'s latent size and rate."""
    return load_patch(name, context=make_context(runtime))


def load_swap(
    kind: str, arg: str, *, runtime: ModelRuntime, patch: Patch, listen: bool = False
) -> Swap:
    """Load what ``/sillage/model ARG`` or ``/sillage/patch ARG`` asks for.

    A new model comes with the playing patch rebuilt for it (its file, or the default patch),
    and, when the engine listens (``listen``), with its own copy for the listener's encoder.

    Raises
    ------
    ModelError, PatchError, OSError
        The caller reports them; the engine keeps playing what it plays.
    """
    if kind == "model":
        # the same backend choice and threads as the playing model (--backend, --threads)
        new = ModelRuntime(
            arg, threads=runtime.requested_threads, backend=runtime.requested_backend
        )
        loaded = load_patch_for(patch.path or "default", new)
        encoder = new.fresh_encoder() if listen and new.info.has_encode else None
        return Swap(
            runtime=new,
            patch=loaded,
            voice_runtimes=voice_streams(loaded, new),
            encoder=encoder,
        )
    loaded = load_patch_for(arg, runtime)
    return Swap(patch=loaded, voice_runtimes=voice_streams(loaded, runtime))


def voice_streams(patch: Patch, runtime: ModelRuntime) -> list[ModelRuntime]:
    """Fresh streams of ``runtime``'s model for a polyphonic patch's voices 1..N-1."""
    n = patch.controller.n_voices
    return [runtime.fresh() for _ in range(n - 1)]


def load_start(
    model: str | Path, patch: str | Path, *, threads: int = 1, backend: str = "auto"
) -> Swap:
    """The model and patch the engine starts with (CLI, decode process)."""
    runtime = ModelRuntime(model, threads=threads, backend=backend)
    return Swap(runtime=runtime, patch=load_patch_for(patch, runtime))

"""Typed messages between the processes (all picklable, all plain values).

Control → decode: :class:`~instrument.link.events.ControlEvent` (already checked), then
:class:`Stop`. Decode → control: :class:`Ready`, :class:`State` (~30 Hz), :class:`Outbound`,
:class:`Rejected`, :class:`Failed`, :class:`Stopped`. Each carries an :class:`EngineSnapshot`
where it says how the engine is doing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from models.nn import LatentCard


@dataclass(frozen=True)
class ModelSummary:
    """The model playing, as the control side shows and sends it.

    ``latent`` names the pitch/loudness dimensions from the model card's ``[latent]`` table
    (every field None when the card has none); ``delay_samples`` is None when unknown.
    """

    name: str
    samplerate: int
    ratio: int
    latent_size: int
    channels: int
    delay_samples: int | None = None
    latent: LatentCard = field(default_factory=LatentCard)
    backend: str = "torch"  # what decodes: "torch" (TorchScript) or "onnx" (its checked twin)
    backend_note: str = ""  # why that backend (no twin, twin refused and why, check result)
    threads: int = 1  # decode intra-op threads
    threads_note: str = ""  # how they were chosen (--threads auto says what it measured)
    path: str = ""  # the file it was loaded from (model history, undo, A/B)

    def state_args(self) -> tuple[str, int, int, int]:
        """The arguments of ``/sillage/state/model`` (name, rate, ratio, latent size)."""
        return (self.name, self.samplerate, self.ratio, self.latent_size)


@dataclass(frozen=True)
class EngineSnapshot:
    """What the decode side reports ~30 times a second.

    Levels are over the last period (None when nothing was played); times in ms; ``terms``
    is the latency budget by term (NaN where unknown).
    """

    model: ModelSummary
    patch: str
    patch_path: str | None
    latent: tuple[float, ...]
    xy: tuple[float, float] | None
    rms_db: float | None
    peak_db: float | None
    frames: int
    underruns: int
    device_underflows: int
    decode_ms: tuple[float, float]
    latency_ms: tuple[float, float]
    samplerate: int
    blocksize: int
    ring_fill: int
    rejected: dict[str, int]
    terms: dict[str, float]
    first_sound_at: float = math.nan
    priority: str = ""  # the decode worker's scheduling, e.g. "SCHED_FIFO 60 (audio 70)"
    latency_values_ms: list[float] | None = None  # the last 512 measurements, final snapshot
    # the whole run's median and sd (final snapshot; NaN before) and how many were measured
    latency_run_ms: tuple[float, float] = (math.nan, math.nan)
    latency_run_count: int = 0
    # faults of the decode side (see instrument.engine.loop): frames replaced by silence
    bad_frames: int = 0
    decode_errors: int = 0
    model_resets: int = 0
    fallbacks: int = 0
    over_budget: int = 0  # frames whose decode took longer than the frame lasts
    prebuffer: int = 0  # the ring target in use (raised for models whose frame is bigger)
    prebuffer_note: str = ""  # --prebuffer auto: its range, then its last change and why
    prebuffer_changes: int = 0  # --prebuffer auto: changes since start
    # what a restarted decode process needs to carry on where this one was
    model_path: str | None = None
    recording: bool = False
    target: tuple[float, ...] = ()
    gain_db: float = 0.0
    input_note: str = ""  # listening to what, or why not ("" without --input)
    input_overruns: int = 0  # input samples lost: capture ring full, or a backlog dropped
    input_level_db: tuple[float, float] | None = None  # RMS, peak of the input (listening)
    # the decode process's garbage collector since start (instrument.engine.gcwatch)
    gc_full: int = 0  # full collections
    gc_max_ms: float = 0.0  # the longest pause of any collection


@dataclass(frozen=True)
class Probe:
    """Control → decode: a no-op that measures control → sound while nobody plays.

    Sent every ``PROBE_PERIOD_S`` through the same pipe as events; the decode worker times it
    like an event (its frame's first sample at the DAC minus ``sent``) and applies nothing."""

    sent: float  # time.perf_counter() in the control process (one clock for both processes)


PROBE_PERIOD_S = 0.1


@dataclass(frozen=True)
class Stop:
    """Control → decode: finish the current frame and stop."""


@dataclass(frozen=True)
class Ready:
    snapshot: EngineSnapshot


@dataclass(frozen=True)
class State:
    snapshot: EngineSnapshot


@dataclass(frozen=True)
class Outbound:
    """A message a patch's controller wants sent (an ``Outgoing``)."""

    message: Any


@dataclass(frozen=True)
class Rejected:
    """A rejection message from the decode side, for ``/sillage/state/error``."""

    text: str


@dataclass(frozen=True)
class Failed:
    """The decode side could not start (before :class:`Ready`) or crashed."""

    text: str


@dataclass(frozen=True)
class Stopped:
    snapshot: EngineSnapshot
    stats: dict[str, Any]


FromEngine = Ready | State | Outbound | Rejected | Failed | Stopped

"""Control state and the contract between the engine and a patch's mapping chain.

The decode worker owns :class:`ControlState` (only it writes it). Once per model frame it
hands every drained event that is not a core ``/sillage/...`` command to the patch's
:class:`Controller`, then asks the controller for the target latent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from instrument.link.events import Event

LATENT_LIMIT = 8.0


@dataclass
class ControlState:
    """Everything the core addresses set. Written only by the decode worker.

    Attributes
    ----------
    target : ndarray, shape (latent_size,), float64
        Latent target set directly (``/sillage/latent``, ``/sillage/xy``).
    centre : ndarray, shape (latent_size,), float64
        Centre that mappings move around and where ``panic`` returns.
    scale : float
        Gain of the latent around the centre (above 1 leaves the corpus on purpose).
    """

    latent_size: int
    target: np.ndarray = field(init=False)
    centre: np.ndarray = field(init=False)
    scale: float = 1.0
    smoothing_ms: float = 30.0
    gain_db: float = 0.0
    xy: tuple[float, float] | None = None
    t: float = 0.0

    def __post_init__(self) -> None:
        self.target = np.zeros(self.latent_size)
        self.centre = np.zeros(self.latent_size)


@dataclass(frozen=True)
class Outgoing:
    """A message a controller wants sent (e.g. ``/wek/outputs`` to port 12000)."""

    host: str
    port: int
    address: str
    args: tuple[Any, ...]


class Controller(Protocol):
    """What a loaded patch offers the engine.

    ``validate`` runs on an adapter thread (must be pure: parse and check only);
    everything else runs on the decode worker.
    """

    name: str

    def osc_ports(self) -> Sequence[int]:
        """Extra UDP ports this patch listens on (sensors, Wekinator), besides the engine's."""
        ...

    def validate(self, address: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """Check a non-core message; return normalised args or raise ``OSCInputError``."""
        ...

    def on_event(self, event: Event, state: ControlState) -> None:
        """Apply one event (decode worker)."""
        ...

    def target(self, t: float, state: ControlState) -> np.ndarray:
        """Target latent at time ``t``, shape (latent_size,), before scale/clamp/smoothing.
        Runs on the decode worker, once per model frame."""
        ...

    def reset(self, state: ControlState) -> None:
        """Panic: forget filter state and held inputs (decode worker)."""
        ...

    def outbox(self) -> list[Outgoing]:
        """Messages to send, drained once per frame (decode worker)."""
        ...

    # A polyphonic keyboard ([voice] voices = N) plays N model streams; the engine decodes
    # voice 0 from ``target`` and voices 1..N-1 from ``voice_targets``, and mixes them.
    @property
    def n_voices(self) -> int:
        """Model streams to decode and mix (1 but for a polyphonic keyboard)."""
        ...

    notice: str  # why part of the patch plays nothing on this model ("": all plays)

    def voice_targets(self) -> np.ndarray | None:
        """Every voice's latent from the last ``target`` call, shape (n_voices, latent_size);
        None with one voice (decode worker)."""
        ...

    def voice_active(self, voice: int) -> bool:
        """Whether a voice sounds now; idle ones are not decoded (decode worker)."""
        ...

    def fixed_dims(self) -> list[int]:
        """Dimensions in absolute units (pitch, loudness) that ``/sillage/scale`` leaves alone."""
        ...


class DirectController:
    """The plainest patch: the target is what ``/sillage/latent`` and ``/sillage/xy`` set."""

    name = "direct"

    def osc_ports(self) -> Sequence[int]:
        return ()

    def validate(self, address: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        from instrument.protocol import OSCInputError

        raise OSCInputError("unknown_address", f"unknown address {address!r}; see docs/osc.md")

    def on_event(self, event: Event, state: ControlState) -> None:
        return None

    def target(self, t: float, state: ControlState) -> np.ndarray:
        return state.target

    def reset(self, state: ControlState) -> None:
        return None

    def outbox(self) -> list[Outgoing]:
        return []

    n_voices = 1
    notice = ""

    def voice_targets(self) -> np.ndarray | None:
        return None

    def voice_active(self, voice: int) -> bool:
        return voice == 0

    def fixed_dims(self) -> list[int]:
        return []

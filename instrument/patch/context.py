"""What a patch may use from the engine while it is built."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PatchContext:
    """What a patch may use from the engine while it is built (on a side thread).

    ``encode`` maps audio, shape (channels, n_samples) float32 at ``samplerate``, to latents,
    shape (latent_size, n_frames); None for decoder-only models. ``latent`` is the model card's
    ``[latent]`` table (``models.nn.LatentCard.to_table``: pitch and loudness dimensions), {}
    when the card has none.
    """

    latent_size: int
    samplerate: int
    encode: Callable[[np.ndarray], np.ndarray] | None = None
    latent: dict[str, Any] = field(default_factory=dict)

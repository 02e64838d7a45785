"""Model rate → device rate, streaming, via soxr (a kept library, not hand-written)."""

from __future__ import annotations

import numpy as np


class Resampler:
    """Streaming resampler for frames of shape (n_samples, channels), float32."""

    def __init__(self, in_rate: int, out_rate: int, channels: int) -> None:
        import soxr

        self._stream = soxr.ResampleStream(
            in_rate, out_rate, channels, dtype="float32", quality="HQ"
        )
        self.out_rate = out_rate

    @property
    def delay_s(self) -> float:
        """The filter's delay, seconds (soxr holds it back at the start of the stream)."""
        try:
            return float(self._stream.delay()) / self.out_rate
        except (AttributeError, TypeError):
            return 0.0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Resample one frame. Runs on the decode worker."""
        return np.asarray(self._stream.resample_chunk(frame), dtype=np.float32).reshape(
            -1, frame.shape[1]
        )

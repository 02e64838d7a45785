"""Pseudo-QMF filter bank: split audio into ``n_bands`` critically sampled bands and back.

Both directions are written as causal convolutions over *frames* of ``n_bands`` samples
(polyphase form), so they reuse :class:`~models.layers.CachedConv1d` and stream exactly like
the rest of the model. The prototype low-pass is a Kaiser-windowed sinc whose cutoff is tuned
so the cosine-modulated bank is close to perfect reconstruction (delayed by its length).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from models.layers import CachedConv1d


def _kaiser_sinc(n_taps: int, cutoff: float, beta: float) -> np.ndarray:
    """Low-pass prototype, ``cutoff`` as a fraction of Nyquist."""
    n = np.arange(n_taps) - (n_taps - 1) / 2
    h = cutoff * np.sinc(cutoff * n) * np.kaiser(n_taps, beta)
    return h / h.sum()


def prototype_filter(n_bands: int, n_taps: int, beta: float = 9.0) -> np.ndarray:
    """Prototype ``h`` minimising the power-complementarity error of the PQMF bank.

    The bank reconstructs well when ``h * h`` (autocorrelation) is close to zero at every
    non-zero multiple of ``2 * n_bands``; a golden-section search over the cutoff finds it.
    """

    def error(cutoff: float) -> float:
        h = _kaiser_sinc(n_taps, cutoff, beta)
        g = np.convolve(h, h[::-1])
        centre = len(g) // 2
        side = g[centre % (2 * n_bands) :: 2 * n_bands]
        side = np.delete(side, centre // (2 * n_bands))
        return float(np.abs(side).max() + abs(g[centre] - 1 / (2 * n_bands)))

    lo, hi = 0.2 / n_bands, 2.0 / n_bands
    golden = (math.sqrt(5) - 1) / 2
    a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
    for _ in range(80):
        if error(a) < error(b):
            hi = b
        else:
            lo = a
        a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
    return _kaiser_sinc(n_taps, (lo + hi) / 2, beta)


class PQMF(nn.Module):
    """Analysis/synthesis filter bank.

    Parameters
    ----------
    n_bands : int
        Number of bands M (a power of two). Band signals run at ``samplerate / M``.
    taps : int
        Filter length in frames; each filter is ``taps * M`` samples long.
    causal : bool
        Causal convolutions (streamable) or centred ones.
    """

    def __init__(self, n_bands: int, taps: int = 8, causal: bool = True) -> None:
        super().__init__()
        self.n_bands = m = n_bands
        n = taps * m
        h = prototype_filter(m, n)
        k = np.arange(m)[:, None]
        t = np.arange(n)[None, :]
        phase = (2 * k + 1) * np.pi / (2 * m) * (t - (n - 1) / 2)
        sign = (-1.0) ** k * np.pi / 4
        h_an = 2 * h * np.cos(phase + sign)  # (M, N) analysis filters
        h_syn = 2 * h * np.cos(phase - sign) * m  # synthesis, gain M undoes decimation
        # Analysis: band k at frame j reads frames j-taps+1..j; W[k, r, i] = h_k[(taps-1-i)M+M-1-r]
        w_an = np.zeros((m, m, taps))
        w_syn = np.zeros((m, m, taps))
        for i in range(taps):
            jj = taps - 1 - i
            for r in range(m):
                w_an[:, r, i] = h_an[:, jj * m + m - 1 - r]
                w_syn[r, :, i] = h_syn[:, jj * m + r]
        self.analysis_conv = CachedConv1d(m, m, taps, causal=causal, bias=False)
        self.synthesis_conv = CachedConv1d(m, m, taps, causal=causal, bias=False)
        with torch.no_grad():
            self.analysis_conv.weight.copy_(torch.from_numpy(w_an).float())
            self.synthesis_conv.weight.copy_(torch.from_numpy(w_syn).float())
        self.analysis_conv.weight.requires_grad_(False)
        self.synthesis_conv.weight.requires_grad_(False)
        # Whole-pipeline delay of analysis → synthesis in samples (for aligned comparisons).
        self.delay = n - m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Analysis.

        Parameters
        ----------
        x : Tensor, shape (batch, 1, time), float32 — ``time`` a multiple of ``n_bands``.

        Returns
        -------
        Tensor, shape (batch, n_bands, time // n_bands)
        """
        b, _, t = x.shape
        frames = x.reshape(b, t // self.n_bands, self.n_bands).transpose(1, 2)
        return self.analysis_conv(frames)

    def inverse(self, bands: torch.Tensor) -> torch.Tensor:
        """Synthesis.

        Parameters
        ----------
        bands : Tensor, shape (batch, n_bands, frames)

        Returns
        -------
        Tensor, shape (batch, 1, frames * n_bands)
        """
        y = self.synthesis_conv(bands)
        b, t = y.shape[0], y.shape[-1]
        return y.transpose(1, 2).reshape(b, 1, t * self.n_bands)

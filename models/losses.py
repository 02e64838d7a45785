"""Training losses: multiscale spectral distance and an optional small discriminator."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LOG_EPS = 1e-4  # magnitude floor: errors far below audibility should not dominate


def multiscale_spectral_distance(
    x: torch.Tensor, y: torch.Tensor, scales: tuple[int, ...] = (2048, 1024, 512, 256, 128)
) -> torch.Tensor:
    """Spectral convergence + mean absolute log-magnitude error, averaged over STFT sizes.

    Parameters
    ----------
    x, y : Tensor, shape (batch, channels, time), float32
        Reference and estimate (order matters only for the convergence normaliser).
    scales : tuple of int
        FFT sizes; hop is a quarter of each, Hann window.

    Returns
    -------
    Tensor, shape () — 0 for identical signals.
    """
    x = x.reshape(-1, x.shape[-1])
    y = y.reshape(-1, y.shape[-1])
    total = x.new_zeros(())
    for n in scales:
        window = torch.hann_window(n, device=x.device, dtype=x.dtype)
        sx = torch.stft(x, n, n // 4, window=window, return_complex=True).abs()
        sy = torch.stft(y, n, n // 4, window=window, return_complex=True).abs()
        conv = torch.linalg.norm(sx - sy) / (torch.linalg.norm(sx) + 1e-7)
        logd = (torch.log(sx + LOG_EPS) - torch.log(sy + LOG_EPS)).abs().mean()
        total = total + conv + logd
    return total / len(scales)


class _ScaleDiscriminator(nn.Module):
    def __init__(self, channels: int, width: int = 16) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [
                nn.Conv1d(channels, width, 15, padding=7),
                nn.Conv1d(width, width * 4, 41, stride=4, padding=20, groups=4),
                nn.Conv1d(width * 4, width * 8, 41, stride=4, padding=20, groups=16),
                nn.Conv1d(width * 8, width * 8, 5, padding=2),
                nn.Conv1d(width * 8, 1, 3, padding=1),
            ]
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.leaky_relu(x, 0.2)
            feats.append(x)
        return feats


class MultiScaleDiscriminator(nn.Module):
    """Three waveform discriminators at 1×, ½× and ¼× rate (MelGAN-style, small)."""

    def __init__(self, channels: int = 1, width: int = 16) -> None:
        super().__init__()
        self.scales = nn.ModuleList([_ScaleDiscriminator(channels, width) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """(batch, channels, time) → per scale, per layer feature maps (last = logits)."""
        out = []
        for i, d in enumerate(self.scales):
            out.append(d(x))
            if i < len(self.scales) - 1:
                x = F.avg_pool1d(x, 4, 2, padding=1)
        return out


def discriminator_loss(
    real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]
) -> torch.Tensor:
    """Hinge loss for the discriminator."""
    loss = real[0][-1].new_zeros(())
    for r, f in zip(real, fake, strict=True):
        loss = loss + F.relu(1 - r[-1]).mean() + F.relu(1 + f[-1]).mean()
    return loss


def generator_adversarial_loss(
    real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hinge generator loss and L1 feature matching (real features detached)."""
    adv = fake[0][-1].new_zeros(())
    fm = fake[0][-1].new_zeros(())
    for r, f in zip(real, fake, strict=True):
        adv = adv - f[-1].mean()
        for fr, ff in zip(r[:-1], f[:-1], strict=True):
            fm = fm + (fr.detach() - ff).abs().mean() / (fr.detach().abs().mean() + 1e-5)
    return adv, fm

"""RAVE-style variational autoencoder: PQMF bands → conv encoder → latent → conv decoder.

Inference code only (no training dependencies): the exported TorchScript module wraps
:class:`VAE` directly, and :mod:`models.train` adds losses and optimisers around it.
"""

import torch
import torch.nn.functional as F
from torch import nn

from models.config import ModelConfig
from models.layers import CachedConv1d, ResBlock, Upsample
from models.pqmf import PQMF


def mod_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Sigmoid with a softer floor, as RAVE uses for amplitudes: 2·σ(x)^2.3 + 1e-7."""
    return 2 * torch.sigmoid(x) ** 2.3 + 1e-7


class Encoder(nn.Module):
    """Bands → latent mean and scale.

    Input (batch, channels * n_bands, frames_band) → two tensors of shape
    (batch, latent_size, frames_band / prod(strides)).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        widths = cfg.decoder_widths[::-1]  # narrow at band rate, wide at latent rate
        layers: list[nn.Module] = [
            CachedConv1d(cfg.n_bands * cfg.channels, widths[0], 7, causal=cfg.causal)
        ]
        for i, s in enumerate(cfg.strides):
            layers += [
                ResBlock(widths[i], 1, cfg.causal),
                nn.LeakyReLU(0.2),
                CachedConv1d(widths[i], widths[i + 1], 2 * s, stride=s, causal=cfg.causal),
            ]
        layers += [
            ResBlock(widths[-1], 1, cfg.causal),
            nn.LeakyReLU(0.2),
            CachedConv1d(widths[-1], 2 * cfg.latent_size, 3, causal=cfg.causal),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, bands: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, raw = self.net(bands).chunk(2, 1)
        return mean, F.softplus(raw) + 1e-4


class Decoder(nn.Module):
    """Latent → bands, through upsampling + residual stacks and three heads.

    The head predicts, per band and band-rate sample, a waveform, its amplitude (through
    :func:`mod_sigmoid`), and the gain of band-limited white noise (the filtered-noise branch:
    its filter resolution is one PQMF band).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        widths = cfg.decoder_widths
        self.n_out = cfg.n_bands * cfg.channels
        self.use_noise = cfg.noise
        self.conv_in = CachedConv1d(cfg.latent_size, widths[0], 3, causal=cfg.causal)
        stages: list[nn.Module] = []
        for i, s in enumerate(cfg.strides):
            stages += [nn.LeakyReLU(0.2), Upsample(widths[i], widths[i + 1], s, cfg.causal)]
            stages += [ResBlock(widths[i + 1], d, cfg.causal) for d in cfg.res_dilations]
        stages.append(nn.LeakyReLU(0.2))
        self.net = nn.Sequential(*stages)
        n_heads = 3 if cfg.noise else 2
        self.head = CachedConv1d(widths[-1], self.n_out * n_heads, 3, causal=cfg.causal)
        with torch.no_grad():
            # Start the noise branch quiet so early training learns the waveform first.
            if cfg.noise and self.head.bias is not None:
                self.head.bias[2 * self.n_out :] = -4.0

    def forward(self, z: torch.Tensor, add_noise: bool = True) -> torch.Tensor:
        """Decode.

        Parameters
        ----------
        z : Tensor, shape (batch, latent_size, frames), float32
        add_noise : bool
            False drops the noise branch (deterministic output, used by equality tests).

        Returns
        -------
        Tensor, shape (batch, channels * n_bands, frames * prod(strides))
        """
        h = self.head(self.net(self.conv_in(z)))
        wave = h[:, : self.n_out]
        amp = h[:, self.n_out : 2 * self.n_out]
        y = wave * mod_sigmoid(amp)
        if self.use_noise and add_noise:
            gain = mod_sigmoid(h[:, 2 * self.n_out :])
            y = y + gain * (torch.rand_like(gain) * 2 - 1)
        return y


class VAE(nn.Module):
    """PQMF + encoder + decoder. Shapes follow nn~: (batch, channels, time)."""

    latent_mean: torch.Tensor
    latent_rot: torch.Tensor
    latent_scale: torch.Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.channels = cfg.channels
        self.n_bands = cfg.n_bands
        self.latent_size = cfg.latent_size
        self.ratio = cfg.ratio
        self.pqmf = PQMF(cfg.n_bands, cfg.pqmf_taps, cfg.causal)
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        # Exposed latent = rotation of the raw latent, centred and scaled on the training data
        # (PCA, as RAVE exports do): dim 0 varies most, ±2 spans the corpus. Identity until
        # :meth:`fit_latent_stats` runs (the trainer calls it at every checkpoint).
        n = cfg.latent_size
        self.register_buffer("latent_mean", torch.zeros(n, 1))
        self.register_buffer("latent_rot", torch.eye(n))
        self.register_buffer("latent_scale", torch.ones(n, 1))

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, channels, time) → bands (batch, channels * n_bands, time / n_bands)."""
        b, c, t = x.shape
        bands = self.pqmf(x.reshape(b * c, 1, t))
        return bands.reshape(b, c * self.n_bands, t // self.n_bands)

    def synthesise(self, bands: torch.Tensor) -> torch.Tensor:
        """(batch, channels * n_bands, frames) → audio (batch, channels, frames * n_bands)."""
        b, _, f = bands.shape
        y = self.pqmf.inverse(bands.reshape(b * self.channels, self.n_bands, f))
        return y.reshape(b, self.channels, f * self.n_bands)

    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and scale, each (batch, latent_size, time / ratio)."""
        return self.encoder(self.analyse(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Audio (batch, channels, time) → exposed latent (batch, latent_size, time / ratio).

        The posterior mean, rotated/centred/scaled by the fitted latent statistics.
        """
        raw = self.encode_dist(x)[0]
        return torch.matmul(self.latent_rot, raw - self.latent_mean) / self.latent_scale

    def decode(self, z: torch.Tensor, add_noise: bool = True) -> torch.Tensor:
        """Exposed latent (batch, latent_size, frames) → audio (batch, channels, frames * ratio)."""
        raw = torch.matmul(self.latent_rot.t(), z * self.latent_scale) + self.latent_mean
        return self.decode_raw(raw, add_noise)

    def decode_raw(self, z: torch.Tensor, add_noise: bool = True) -> torch.Tensor:
        """Raw latent (as sampled in training) → audio (batch, channels, frames * ratio)."""
        return self.synthesise(self.decoder(z, add_noise))

    @torch.jit.unused
    def fit_latent_stats(
        self, x: torch.Tensor, min_level_db: float = -50.0, samplerate: int = 48000
    ) -> None:
        """Fit the exposed-latent transform on audio ``x``: PCA axes and scales of the
        posterior means of sounding frames, centred on a frame that sounds when held.

        The centre of the exposed space (all zeros) is where a performance starts, so it must
        not be silence: the mean of the latents often is (held still, an "average" of many
        decaying notes decodes to almost nothing). The centre is therefore the loud training
        frame nearest the median whose latent, held constant, decodes clearly audibly.

        Parameters
        ----------
        x : Tensor, shape (batch, channels, time) — a representative sample of the data.
        min_level_db : float
            Frames quieter than this (RMS, dB full scale) are ignored.
        samplerate : int
            Only used to size the audibility check (0.4 s per candidate).
        """
        with torch.no_grad():
            raw = self.encode_dist(x)[0]
            b = x.shape[0]
            frames = raw.shape[-1]
            rms = x[..., : frames * self.ratio].reshape(b, -1, frames, self.ratio)
            level = (10 * torch.log10(rms.pow(2).mean((1, 3)) + 1e-12)).reshape(-1)
            flat = raw.transpose(0, 1).reshape(self.latent_size, -1)
            keep = level >= min_level_db
            if int(keep.sum()) >= 4 * self.latent_size:
                flat, level = flat[:, keep], level[keep]
            mean = flat.mean(1, keepdim=True)
            cov = torch.cov(flat - mean) + 1e-8 * torch.eye(self.latent_size, device=x.device)
            evals, evecs = torch.linalg.eigh(cov)
            order = torch.argsort(evals, descending=True)
            rot = evecs[:, order].t().contiguous()
            # Fix each axis' sign (largest component positive) so refits do not flip controls.
            signs = torch.sign(rot.gather(1, rot.abs().argmax(1, keepdim=True)))
            rot = rot * signs
            scale = evals[order].clamp_min(1e-8).sqrt().unsqueeze(1)
            self.latent_mean.copy_(self._audible_centre(flat, level, scale, rot, samplerate))
            self.latent_rot.copy_(rot)
            self.latent_scale.copy_(scale)

    @torch.jit.unused
    def _audible_centre(
        self,
        flat: torch.Tensor,
        level: torch.Tensor,
        scale: torch.Tensor,
        rot: torch.Tensor,
        samplerate: int,
        n_candidates: int = 24,
        audible_db: float = -35.0,
    ) -> torch.Tensor:
        """Candidate centres: loud frames nearest the median; first one audible when held."""
        loud = level >= torch.quantile(level, 0.5)
        pool = flat[:, loud] if int(loud.sum()) >= n_candidates else flat
        median = pool.median(1, keepdim=True).values
        dist = ((rot @ (pool - median)) / scale).pow(2).sum(0)
        idx = torch.argsort(dist)[:n_candidates]
        cand = pool[:, idx]  # (latent, n)
        n_frames = max(4, int(0.4 * samplerate) // self.ratio)
        z = cand.t().unsqueeze(-1).expand(-1, -1, n_frames).contiguous()
        y = self.decode_raw(z, add_noise=False)
        tail = y[..., y.shape[-1] // 2 :]
        held_db = 10 * torch.log10(tail.pow(2).mean((1, 2)) + 1e-12)
        ok = torch.nonzero(held_db >= audible_db).flatten()
        pick = int(ok[0]) if len(ok) else int(torch.argmax(held_db))
        return cand[:, pick : pick + 1].clone()

    def forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass.

        Returns
        -------
        y : Tensor (batch, channels, time) — reconstruction.
        target : Tensor (batch, channels, time) — input through PQMF analysis and synthesis
            (same delay as ``y``, so spectral losses compare aligned signals).
        kl : Tensor () — KL divergence to N(0, I), summed over latent dims, batch mean.
        z : Tensor (batch, latent_size, frames) — the sampled latent.
        """
        bands = self.analyse(x)
        mean, scale = self.encoder(bands)
        z = mean + scale * torch.randn_like(mean)
        var = scale * scale
        kl = 0.5 * (mean * mean + var - torch.log(var) - 1).sum(1).mean()
        y = self.synthesise(self.decoder(z))
        with torch.no_grad():
            target = self.synthesise(bands)
        return y, target, kl, z

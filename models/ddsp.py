"""DDSP-style model family: a playable latent (pitch, loudness, timbre) driving a
harmonic-plus-filtered-noise synthesiser whose oscillator phase runs on across calls.

Why it exists: a decoder fed the same latent every frame, whose layers treat every frame
alike, repeats itself every frame — at ratio 256 and 48 kHz a 187.5 Hz buzz whatever the
latent (ARCHITECTURE.md, "A held latent must be playable"). Here the pitch is a latent
dimension read by an oscillator, and the oscillator's phase lives in the streaming state.

Latent (exposed, ``latent_size`` = 2 + timbre dims, 8 by default):

* dim 0 **pitch**: ``z0 = pitch_scale · log2(f0 / pitch_ref_hz)`` (octaves re A4 = 440 Hz);
* dim 1 **loudness**: ``z1 = (level_dB − loudness_ref_db) / loudness_db_per_unit``, the level
  being the RMS (dB full scale) of the last 1024 input samples at each frame's end;
* dims 2… **timbre**: a KL-regularised VAE latent, PCA-rotated and scaled so ±2 spans the
  training data (as the RAVE-style family does).

Inference code only: the exported TorchScript module wraps :class:`DDSP` directly, and
:mod:`models.ddsp_train` adds the training step.
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.config import ModelConfig
from models.layers import CachedConv1d, ResBlock, cached_convs

_NO_STATE = torch.zeros(0)


@dataclass(frozen=True)
class DDSPSettings:
    """The DDSP family's own settings, read from ``ModelConfig.extra`` (defaults here)."""

    n_harmonics: int = 64
    n_noise: int = 65  # noise filter magnitudes, linear in frequency 0…Nyquist
    hidden: int = 128  # decoder width (frame rate)
    enc_hidden: int = 128  # timbre encoder width
    pitch_hidden: int = 256  # pitch network width
    n_fft: int = 2048  # analysis window (samples), ending at each frame's last sample
    loudness_window: int = 1024  # samples of the RMS that defines the loudness dimension
    n_mels: int = 64  # timbre encoder input bands (log-spaced, 40 Hz … Nyquist)
    pitch_fmax_hz: float = 6000.0  # pitch network looks at spectrum bins below this
    pitch_fmin_hz: float = 32.703195662574764  # C1: lowest pitch class (bin 0)
    pitch_bins: int = 360  # 6 octaves of 20-cent bins from pitch_fmin_hz
    pitch_bins_per_octave: int = 60
    pitch_ref_hz: float = 440.0
    pitch_scale: float = 1.0  # latent units per octave
    loudness_ref_db: float = -30.0
    loudness_db_per_unit: float = 15.0
    # training only
    pitch_loss_weight: float = 0.1
    voicing_loss_weight: float = 0.05

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "DDSPSettings":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in cfg.extra.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def _mel_matrix(n_mels: int, n_fft: int, sr: int, fmin: float = 40.0) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters, log-spaced from ``fmin`` to Nyquist."""
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    edges = np.geomspace(fmin, sr / 2, n_mels + 2)
    m = np.zeros((n_mels, len(freqs)))
    for i in range(n_mels):
        lo, c, hi = edges[i], edges[i + 1], edges[i + 2]
        up = (freqs - lo) / max(c - lo, 1e-9)
        down = (hi - freqs) / max(hi - c, 1e-9)
        m[i] = np.clip(np.minimum(up, down), 0, None)
        if m[i].sum() == 0:  # narrower than a bin: take the nearest bin
            m[i, int(np.argmin(np.abs(freqs - c)))] = 1.0
    m /= m.sum(1, keepdims=True)
    return torch.tensor(m, dtype=torch.float32)


class CausalFrames(nn.Module):
    """Audio → frames of ``n_fft`` samples ending at each hop's last sample (causal).

    Streams like :class:`~models.layers.CachedConv1d`: mode 0 pads with zeros (a fresh
    signal), mode 1 keeps the last ``n_fft − hop`` samples in a buffer between calls.
    """

    cache: torch.Tensor

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop = hop
        self.pad_left = n_fft - hop
        self.mode = 0
        self.register_buffer("cache", torch.zeros(1, self.pad_left), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, time) with time a multiple of hop → (batch, time // hop, n_fft)."""
        if self.mode == 1:
            if self.cache.shape[0] != x.shape[0]:
                self.cache = torch.zeros(x.shape[0], self.pad_left, dtype=x.dtype)
            x = torch.cat([self.cache, x], -1)
            self.cache.copy_(x[:, x.shape[-1] - self.pad_left :])
        else:
            x = F.pad(x, (self.pad_left, 0))
        return x.unfold(-1, self.n_fft, self.hop)


class HarmonicNoiseSynth(nn.Module):
    """Harmonic oscillator bank + filtered noise, driven by frame-rate controls.

    Within each frame of ``ratio`` samples, f0 and harmonic amplitudes move linearly from
    the previous frame's value to this frame's (so nothing steps at a frame boundary); the
    phase is the running sum of the instantaneous frequency, wrapped mod 2π at every frame
    start. Harmonics at or above Nyquist are silenced sample by sample. The noise is white
    noise filtered, frame by frame, by a linear-phase FIR (from ``n_noise`` magnitudes) with
    overlap-add, so a held filter is exactly a time-invariant filter on a continuous noise.

    State (one row per batch item): ``[phase, prev_f0, started, prev_amps (K), noise tail
    (ratio)]``. Mode 0: every call starts fresh; mode 1: the state lives in a buffer (nn~,
    TorchScript); mode 2: ``state_in`` / ``state_out`` (ONNX, explicit state).
    """

    state: torch.Tensor
    harmonics: torch.Tensor
    ramp: torch.Tensor
    ir_window: torch.Tensor
    ir_basis: torch.Tensor
    ir_basis_flipped: torch.Tensor
    harm_col: torch.Tensor
    harm_4d: torch.Tensor
    phase_basis: torch.Tensor
    crossfade: torch.Tensor

    def __init__(self, samplerate: int, ratio: int, n_harmonics: int, n_noise: int) -> None:
        super().__init__()
        self.sr = samplerate
        self.ratio = ratio
        self.n_harmonics = n_harmonics
        self.n_noise = n_noise
        self.ir_size = 2 * (n_noise - 1)
        self.fft_size = 1 << math.ceil(math.log2(ratio + self.ir_size - 1))
        if self.fft_size - ratio > ratio:
            raise ValueError("noise filter longer than a frame: raise ratio or lower n_noise")
        self.state_size = 3 + n_harmonics + ratio
        self.mode = 0
        self.register_buffer("state", torch.zeros(1, self.state_size), persistent=False)
        self.register_buffer("harmonics", torch.arange(1, n_harmonics + 1, dtype=torch.float32))
        self.register_buffer(
            "ramp", torch.arange(1, ratio + 1, dtype=torch.float64).view(1, 1, -1) / ratio
        )
        self.register_buffer("ir_window", torch.hann_window(self.ir_size, periodic=False))
        # The magnitudes → impulse response map is linear: as a matrix it lets the noise be
        # filtered by a plain (grouped) convolution instead of FFTs (ONNX has no rfft).
        eye = torch.eye(n_noise)
        basis = torch.fft.irfft(torch.complex(eye, torch.zeros_like(eye)), n=self.ir_size)
        basis = torch.roll(basis, self.ir_size // 2, -1) * self.ir_window
        self.register_buffer("ir_basis", basis.contiguous(), persistent=False)
        # Streaming-time constants, in the shapes the forward pass uses (no views per call):
        # the basis reversed in time (the convolution's kernel), the harmonic numbers as a
        # column, the phase polynomial's basis [1, i, i(i+1)/(2n)] (float64) and the
        # amplitude crossfade [1 − i/n, i/n] over a frame's samples i = 1 … n.
        self.register_buffer("ir_basis_flipped", basis.flip(-1).contiguous(), persistent=False)
        harm = torch.arange(1, n_harmonics + 1, dtype=torch.float32)
        self.register_buffer("harm_col", harm.view(1, -1, 1), persistent=False)
        self.register_buffer("harm_4d", harm.view(1, 1, -1, 1), persistent=False)
        idx = self.ramp.view(1, -1) * ratio  # 1 … n (the float64 values the phase used)
        basis3 = torch.cat([torch.ones_like(idx), idx, idx * (idx + 1) / (2 * ratio)], 0)
        self.register_buffer("phase_basis", basis3.contiguous(), persistent=False)
        r = self.ramp.view(1, -1).float()
        self.register_buffer(
            "crossfade", torch.cat([1 - r, r], 0).view(1, 1, 2, ratio), persistent=False
        )
        # Noise filtering: 0 FFTs (training, long sequences), 1 gather + matmul (TorchScript
        # streaming, a frame per call), 2 grouped convolution (ONNX). Same output.
        self.noise_path = 0
        self.chunk_frames = 128
        self.state_in: torch.Tensor = _NO_STATE
        self.state_out: torch.Tensor = _NO_STATE

    def initial_state(self, batch_size: int = 1) -> torch.Tensor:
        return torch.zeros(batch_size, self.state_size)

    def forward(
        self, f0: torch.Tensor, amps: torch.Tensor, noise_mags: torch.Tensor, add_noise: bool
    ) -> torch.Tensor:
        """Synthesise. Runs on the decode worker.

        Parameters
        ----------
        f0 : Tensor (batch, frames) — Hz, the value reached at each frame's last sample.
        amps : Tensor (batch, n_harmonics, frames) — linear amplitude of each harmonic.
        noise_mags : Tensor (batch, n_noise, frames) — linear filter magnitudes.
        add_noise : bool — False leaves the noise out (deterministic output).

        Returns
        -------
        Tensor (batch, 1, frames * ratio)
        """
        b, n_frames = f0.shape[0], f0.shape[1]
        n = self.ratio
        if self.mode == 1:
            if self.state.shape[0] != b:
                self.state = torch.zeros(b, self.state_size, dtype=f0.dtype)
            state = self.state
        elif self.mode == 2:
            state = self.state_in
        else:
            state = torch.zeros(b, self.state_size, dtype=f0.dtype, device=f0.device)
        # Few, fused ops: per frame this runs once per 5.3 ms on one thread, and at these sizes
        # each op's overhead costs more than its arithmetic (issue 13, profiled).
        k = self.n_harmonics
        started = state[:, 2:3] > 0.5  # a fresh state ramps from this frame's own controls
        prev_f0 = torch.where(started, state[:, 1:2], f0[:, :1])
        prev_amps = torch.where(started, state[:, 3 : 3 + k], amps[:, :, 0])
        tail = state[:, 3 + k :]

        # --- phase (float64 for the running sum, wrapped per frame) -------------------------
        f_both = torch.cat([prev_f0, f0], 1)  # (b, F + 1): each frame's start and end f0
        w = f_both.double() * (2 * math.pi / self.sr)  # radians per sample
        w_prev = w[:, :-1]
        dw = w[:, 1:] - w_prev
        step = w_prev * n + dw * ((n + 1) / 2)  # phase advance over a frame
        phase0 = state[:, 0:1].double()
        if n_frames == 1:
            ends = phase0 + step
            starts = torch.remainder(phase0, 2 * math.pi)
        else:
            ends = torch.cumsum(step, 1) + phase0
            starts = torch.remainder(torch.cat([phase0, ends[:, :-1]], 1), 2 * math.pi)
        # phase at sample i (1 … n) of a frame: start + w_prev·i + dw·i(i+1)/(2n), one matmul
        coef = torch.stack([starts, w_prev, dw], -1)  # (b, F, 3)
        phase = torch.remainder(torch.matmul(coef, self.phase_basis), 2 * math.pi).float()

        # --- harmonics: amplitudes ramp from the previous frame's ---------------------------
        # A harmonic sounds in a frame only if it stays below Nyquist at both ends of the
        # frame (f0 moves linearly in between): no aliasing, sample by sample.
        f_top = torch.maximum(f_both[:, :-1], f_both[:, 1:]).unsqueeze(1)  # (b, 1, F)
        audible = (self.harm_col * f_top < self.sr / 2).to(amps.dtype)  # (b, K, F)
        if n_frames == 1:
            a_prev = prev_amps.unsqueeze(-1)
        else:
            a_prev = torch.cat([prev_amps.unsqueeze(-1), amps[:, :, :-1]], 2)
        # (b, F, 2, K): each frame's start and end amplitudes
        ab = (torch.stack([a_prev, amps], 1) * audible.unsqueeze(1)).permute(0, 3, 1, 2)
        # sin(k·phase) carries no gradient in training (pitch comes from labels): the sum
        # over harmonics is one batched matmul, cheap to differentiate w.r.t. amplitudes.
        # In chunks of frames, so decoding minutes at once needs no gigabytes of sines.
        if n_frames <= self.chunk_frames:
            parts = torch.matmul(ab, torch.sin(self.harm_4d * phase.unsqueeze(2)))
        else:
            chunks: list[torch.Tensor] = []
            for s0 in range(0, n_frames, self.chunk_frames):
                sines = torch.sin(self.harm_4d * phase[:, s0 : s0 + self.chunk_frames].unsqueeze(2))
                chunks.append(torch.matmul(ab[:, s0 : s0 + self.chunk_frames], sines))
            parts = torch.cat(chunks, 1)  # (b, F, 2, n)
        y = (parts * self.crossfade).sum(2)  # (b, F, n): start·(1 − i/n) + end·i/n

        # --- filtered noise: per-frame linear-phase FIR, overlap-add ------------------------
        new_tail = tail
        if add_noise:
            mags = noise_mags.transpose(1, 2)  # (b, F, M)
            noise = torch.rand(b, n_frames, n, dtype=f0.dtype, device=f0.device) * 2 - 1
            if self.noise_path != 0:
                size = self.ir_size
                ir_flipped = torch.matmul(mags, self.ir_basis_flipped)  # (b, F, ir_size)
                padded = F.pad(noise, (size - 1, size - 1))  # (b, F, n + 2·size − 2)
                if self.noise_path == 1:  # TorchScript: gather + matmul (no slow conv path)
                    windows = padded.unfold(-1, size, 1)  # (b, F, n + size − 1, size)
                    full = torch.matmul(windows, ir_flipped.unsqueeze(-1)).squeeze(-1)
                else:  # ONNX: one grouped convolution (exports; unfold does not)
                    weight = ir_flipped.reshape(b * n_frames, 1, size)
                    full = F.conv1d(
                        padded.reshape(1, b * n_frames, -1), weight, groups=b * n_frames
                    )
                    full = full.reshape(b, n_frames, n + size - 1)
                heads = full[..., :n]
                tails = F.pad(full[..., n:], (0, 1 - size + n))  # (b, F, n)
            else:
                ir = torch.fft.irfft(torch.complex(mags, torch.zeros_like(mags)), n=self.ir_size)
                ir = torch.roll(ir, self.ir_size // 2, -1) * self.ir_window
                spec = torch.fft.rfft(noise, self.fft_size) * torch.fft.rfft(ir, self.fft_size)
                blocks = torch.fft.irfft(spec, self.fft_size)  # (b, F, fft_size)
                heads = blocks[..., :n]
                tails = F.pad(blocks[..., n:], (0, 2 * n - self.fft_size))  # (b, F, n)
            if n_frames == 1:
                y = y + heads + tail.unsqueeze(1)
            else:
                y = y + heads + torch.cat([tail.unsqueeze(1), tails[:, :-1]], 1)
            new_tail = tails[:, -1]

        if self.mode != 0:
            last_phase = torch.remainder(ends[:, -1:], 2 * math.pi).to(f0.dtype)
            new_state = torch.cat(
                [last_phase, f0[:, -1:], torch.ones_like(last_phase), amps[:, :, -1], new_tail],
                1,
            )
            if self.mode == 1:
                self.state.copy_(new_state)
            else:
                self.state_out = new_state
        return y.reshape(b, 1, n_frames * n)


class FrameDecoder(nn.Module):
    """Latent (frame rate) → harmonic distribution, harmonic gain, noise magnitudes.

    Causal convolutions over frames (kernel 3, then residual blocks): a held latent gives
    held controls after a few frames.
    """

    def __init__(self, latent_size: int, s: DDSPSettings) -> None:
        super().__init__()
        h = s.hidden
        self.n_harmonics = s.n_harmonics
        self.n_noise = s.n_noise
        self.use_noise = True  # False drops the noise branch (as the VAE decoder's flag)
        self.conv_in = CachedConv1d(latent_size, h, 3)
        self.net = nn.Sequential(
            ResBlock(h, 1, True), ResBlock(h, 2, True), ResBlock(h, 4, True), nn.LeakyReLU(0.2)
        )
        self.head = CachedConv1d(h, s.n_harmonics + 1 + s.n_noise, 1)
        with torch.no_grad():
            if self.head.bias is not None:
                # Harmonic gain starts near √2 (a sine at the requested RMS); noise quiet.
                self.head.bias[s.n_harmonics] = 0.0
                self.head.bias[s.n_harmonics + 1 :] = -4.0

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(batch, latent, F) → logits (b, K, F), harmonic gain (b, 1, F), noise (b, M, F)."""
        if z.shape[-1] == 1 and self._streams(z.shape[0]):
            h = self._one_frame(z[:, :, 0]).unsqueeze(-1)
        else:
            h = self.head(self.net(self.conv_in(z)))
        k = self.n_harmonics
        return h[:, :k], h[:, k : k + 1], h[:, k + 1 :]

    def _streams(self, batch: int) -> bool:
        """Whether the caches carry state (buffer or explicit) for this batch size."""
        mode = self.conv_in.mode
        return mode == 2 or (mode == 1 and self.conv_in.cache.shape[0] == batch)

    def _one_frame(self, z: torch.Tensor) -> torch.Tensor:
        """One streaming frame, (batch, latent) → (batch, outputs): the same convolutions and
        caches as the layers' own forward, in a third of the ops (each conv is one
        ``F.linear`` over the taps it reads: :meth:`~models.layers.CachedConv1d.step`)."""
        # Literal indices: TorchScript unrolls no loop over a Sequential of mixed modules.
        h = self.conv_in.step(z)
        h = self.net[0].step(h)  # type: ignore[operator]
        h = self.net[1].step(h)  # type: ignore[operator]
        h = self.net[2].step(h)  # type: ignore[operator]
        return self.head.step(F.leaky_relu(h, 0.2))


class PitchNet(nn.Module):
    """Causal pitch estimator: log-magnitude spectrum frames → log-f0 bin logits + voicing.

    Classification over ``pitch_bins`` 20-cent bins (CREPE-style), read out as a weighted
    mean around the best bin, so the estimate is finer than a bin.
    """

    def __init__(self, n_in: int, s: DDSPSettings) -> None:
        super().__init__()
        h = s.pitch_hidden
        self.net = nn.Sequential(
            CachedConv1d(n_in, h, 1),
            nn.LeakyReLU(0.2),
            CachedConv1d(h, h, 3),
            nn.LeakyReLU(0.2),
            CachedConv1d(h, h, 1),
            nn.LeakyReLU(0.2),
            CachedConv1d(h, s.pitch_bins + 1, 1),
        )

    def forward(self, logmag: torch.Tensor) -> torch.Tensor:
        """(b, n_in, F) → (b, pitch_bins + 1, F); the last row is the voicing logit."""
        return self.net(logmag)


class TimbreEncoder(nn.Module):
    """Level-normalised log-mel frames → timbre posterior mean and scale (causal convs)."""

    def __init__(self, n_mels: int, n_timbre: int, s: DDSPSettings) -> None:
        super().__init__()
        h = s.enc_hidden
        self.net = nn.Sequential(
            CachedConv1d(n_mels, h, 3),
            nn.LeakyReLU(0.2),
            CachedConv1d(h, h, 3),
            nn.LeakyReLU(0.2),
            CachedConv1d(h, 2 * n_timbre, 1),
        )

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, raw = self.net(mel).chunk(2, 1)
        return mean, F.softplus(raw) + 1e-4


class DDSP(nn.Module):
    """Encoder (pitch network, loudness, timbre VAE) + frame decoder + synthesiser.

    Same methods as :class:`~models.vae.VAE` where the exporter and evaluator need them:
    ``encode``, ``decode(z, add_noise)``, ``analyse`` / ``synthesise`` (identity here: no
    PQMF), ``fit_latent_stats``.
    """

    latent_mean: torch.Tensor
    latent_rot: torch.Tensor
    latent_scale: torch.Tensor
    mel: torch.Tensor
    window: torch.Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.channels != 1:
            raise ValueError("the DDSP family is mono (channels = 1)")
        if cfg.latent_size < 3:
            raise ValueError("the DDSP family needs latent_size ≥ 3 (pitch, loudness, timbre)")
        s = DDSPSettings.from_config(cfg)
        self.settings = s
        self.channels = 1
        self.sr = cfg.samplerate
        self.ratio = cfg.ratio
        self.latent_size = cfg.latent_size
        self.n_timbre = cfg.latent_size - 2
        self.n_harmonics = s.n_harmonics
        self.pitch_ref_hz = s.pitch_ref_hz
        self.pitch_scale = s.pitch_scale
        self.loudness_ref_db = s.loudness_ref_db
        self.loudness_db_per_unit = s.loudness_db_per_unit
        self.loudness_window = s.loudness_window
        self.pitch_bins = s.pitch_bins
        self.pitch_bins_per_octave = s.pitch_bins_per_octave
        # Bin 0 in the latent's pitch units (octaves re pitch_ref_hz).
        self.pitch_bin0 = math.log2(s.pitch_fmin_hz / s.pitch_ref_hz)
        self.n_pitch_in = int(s.pitch_fmax_hz / (cfg.samplerate / s.n_fft)) + 1
        self.frames = CausalFrames(s.n_fft, cfg.ratio)
        self.register_buffer("window", torch.hann_window(s.n_fft))
        self.register_buffer("mel", _mel_matrix(s.n_mels, s.n_fft, cfg.samplerate))
        self.pitch_net = PitchNet(self.n_pitch_in, s)
        self.timbre_encoder = TimbreEncoder(s.n_mels, self.n_timbre, s)
        self.decoder = FrameDecoder(cfg.latent_size, s)
        self.synth = HarmonicNoiseSynth(cfg.samplerate, cfg.ratio, s.n_harmonics, s.n_noise)
        n = self.n_timbre
        self.register_buffer("latent_mean", torch.zeros(n, 1))
        self.register_buffer("latent_rot", torch.eye(n))
        self.register_buffer("latent_scale", torch.ones(n, 1))

    # -- analysis --------------------------------------------------------------------------
    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        """Identity (the VAE family's PQMF analysis; kept so one evaluator serves both)."""
        return x

    def synthesise(self, x: torch.Tensor) -> torch.Tensor:
        """Identity (see :meth:`analyse`)."""
        return x

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Audio (batch, 1, time) → pitch-net input (b, n_pitch_in, F), level-normalised
        log-mel (b, n_mels, F), loudness in dB (b, F). Time must be a multiple of ratio."""
        frames = self.frames(x[:, 0])  # (b, F, n_fft)
        level = frames[..., frames.shape[-1] - self.loudness_window :].pow(2).mean(-1)
        loud_db = 10 * torch.log10(level + 1e-10)
        spec = torch.fft.rfft(frames * self.window).abs().pow(2)  # (b, F, bins)
        # Both inputs are level-free, with a floor relative to the frame's peak (-50 dB) so
        # near-empty bins (window sidelobes, rounding) do not flicker in the log domain.
        low = spec[..., : self.n_pitch_in]
        peak = low.amax(-1, keepdim=True)
        logmag = torch.log((low + 1e-5 * peak + 1e-12) / (peak + 1e-12))
        melpow = torch.matmul(spec, self.mel.t())
        mel = torch.log(melpow + 1e-5 * melpow.amax(-1, keepdim=True) + 1e-12)
        mel = mel - mel.mean(-1, keepdim=True)
        return (
            (logmag / 6 + 1).transpose(1, 2),
            (mel / 8).transpose(1, 2),
            loud_db,
        )

    def pitch_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """(b, bins + 1, F) → pitch in latent units (b, F): weighted mean over ±4 bins of the
        best bin."""
        p = torch.softmax(logits[:, : self.pitch_bins], 1)
        best = p.argmax(1, keepdim=True)  # (b, 1, F)
        offsets = torch.arange(-4, 5, device=logits.device).view(1, -1, 1)
        idx = (best + offsets).clamp(0, self.pitch_bins - 1)
        w = p.gather(1, idx)
        centre = (w * idx.to(p.dtype)).sum(1) / w.sum(1).clamp_min(1e-9)
        octaves = self.pitch_bin0 + centre / self.pitch_bins_per_octave
        return self.pitch_scale * octaves

    def loudness_to_latent(self, loud_db: torch.Tensor) -> torch.Tensor:
        return (loud_db - self.loudness_ref_db) / self.loudness_db_per_unit

    def encode_parts(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pitch latent (b, F), pitch logits (b, bins + 1, F), loudness latent (b, F),
        raw timbre posterior mean and scale (b, n_timbre, F)."""
        pin, mel, loud_db = self.features(x)
        logits = self.pitch_net(pin)
        mean, scale = self.timbre_encoder(mel)
        return (
            self.pitch_from_logits(logits),
            logits,
            self.loudness_to_latent(loud_db),
            mean,
            scale,
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Audio (batch, 1, time) → exposed latent (batch, latent_size, time / ratio):
        [estimated pitch, loudness, rotated/scaled timbre posterior mean]."""
        pitch, _, loud, mean, _ = self.encode_parts(x)
        timbre = torch.matmul(self.latent_rot, mean - self.latent_mean) / self.latent_scale
        return torch.cat([pitch.unsqueeze(1), loud.unsqueeze(1), timbre], 1)

    # -- synthesis --------------------------------------------------------------------------
    def decode(self, z: torch.Tensor, add_noise: bool = True) -> torch.Tensor:
        """Exposed latent (batch, latent_size, frames) → audio (batch, 1, frames * ratio).

        Runs on the decode worker (one frame per call when streaming)."""
        timbre = z[:, 2:]
        raw = torch.matmul(self.latent_rot.t(), timbre * self.latent_scale) + self.latent_mean
        return self.decode_raw(torch.cat([z[:, :2], raw], 1), add_noise)

    def decode_raw(self, z: torch.Tensor, add_noise: bool = True) -> torch.Tensor:
        """Latent with raw (unrotated) timbre → audio (batch, 1, frames * ratio)."""
        z = torch.nan_to_num(z)
        f0 = self.pitch_ref_hz * torch.pow(2.0, z[:, 0] / self.pitch_scale)
        f0 = f0.clamp(1.0, 0.5 * self.sr)
        level_db = (self.loudness_ref_db + self.loudness_db_per_unit * z[:, 1]).clamp(-120, 0)
        level = torch.pow(10.0, level_db / 20).unsqueeze(1)  # (b, 1, F)
        logits, gain, noise = self.decoder(z)
        # Harmonic distribution over the harmonics below Nyquist (renormalised), times a
        # learnt gain around the requested level.
        below = (self.synth.harmonics.view(1, -1, 1) * f0.unsqueeze(1) < 0.5 * self.sr).to(z.dtype)
        dist = torch.softmax(logits, 1) * below
        dist = dist / dist.sum(1, keepdim=True).clamp_min(1e-7)
        amps = dist * level * 4 * torch.sigmoid(gain - 1.0)
        mags = level * 4 * torch.sigmoid(noise) ** 2
        return self.synth(f0, amps, mags, add_noise and self.decoder.use_noise)

    # -- latent statistics ------------------------------------------------------------------
    @torch.jit.unused
    def fit_latent_stats(
        self, x: torch.Tensor, min_level_db: float = -50.0, samplerate: int = 48000
    ) -> None:
        """Fit the exposed timbre axes on audio ``x``: PCA of the posterior means of sounding
        frames, centred on their mean, scaled to unit variance (±2 spans the data). Pitch and
        loudness need no fit: their scales are fixed and documented."""
        with torch.no_grad():
            _, _, loud, mean, _ = self.encode_parts(x)
            level = self.loudness_ref_db + self.loudness_db_per_unit * loud
            flat = mean.transpose(0, 1).reshape(self.n_timbre, -1)
            keep = level.reshape(-1) >= min_level_db
            if int(keep.sum()) >= 4 * self.n_timbre:
                flat = flat[:, keep]
            centre = flat.mean(1, keepdim=True)
            cov = torch.cov(flat - centre) + 1e-8 * torch.eye(self.n_timbre)
            evals, evecs = torch.linalg.eigh(cov)
            order = torch.argsort(evals, descending=True)
            rot = evecs[:, order].t().contiguous()
            signs = torch.sign(rot.gather(1, rot.abs().argmax(1, keepdim=True)))
            rot = rot * signs
            self.latent_mean.copy_(centre)
            self.latent_rot.copy_(rot)
            self.latent_scale.copy_(evals[order].clamp_min(1e-8).sqrt().unsqueeze(1))

    @torch.jit.unused
    def latent_labels(self) -> list[str]:
        """What each exposed dimension means (nn~ inlet/outlet labels)."""
        # ASCII only: nn~ shows these as inlet/outlet hints in Max and Pd.
        return [
            f"(signal) pitch: {self.pitch_scale:g}*log2(f0/{self.pitch_ref_hz:g} Hz)",
            f"(signal) loudness: (dB - {self.loudness_ref_db:g}) / {self.loudness_db_per_unit:g}",
        ] + [f"(signal) timbre {i}" for i in range(self.n_timbre)]

    @torch.jit.unused
    def latent_card(self) -> dict[str, Any]:
        """The ``[latent]`` table of the model card."""
        return {
            "pitch_dim": 0,
            "pitch_scale": float(self.pitch_scale),
            "pitch_ref_hz": float(self.pitch_ref_hz),
            "loudness_dim": 1,
            "loudness_ref_db": float(self.loudness_ref_db),
            "loudness_db_per_unit": float(self.loudness_db_per_unit),
            "timbre_dims": list(range(2, self.latent_size)),
            "loudness_definition": (
                f"RMS in dB full scale of the last {self.loudness_window} samples at each "
                "frame's end"
            ),
        }

    @torch.jit.unused
    def forward(self, x: torch.Tensor) -> Any:
        """Training pass: see :func:`models.ddsp_train.ddsp_losses`."""
        raise NotImplementedError("use models.ddsp_train for training")


def set_ddsp_streaming(model: DDSP, streaming: bool, batch_size: int = 1) -> None:
    """Streaming state for the parts :func:`models.layers.set_streaming` does not know:
    the analysis frame buffer and the synthesiser's phase / previous controls / noise tail."""
    model.frames.mode = 1 if streaming else 0
    model.frames.cache = torch.zeros(batch_size, model.frames.pad_left)
    model.synth.mode = 1 if streaming else 0
    model.synth.state = torch.zeros(batch_size, model.synth.state_size)


def decoder_state_parts(model: DDSP) -> list[CachedConv1d]:
    """The decoder's cached convolutions, in call order (for explicit-state export)."""
    return cached_convs(model.decoder)

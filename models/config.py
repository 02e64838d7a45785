"""Model and training configuration: one frozen dataclass, named presets, JSON round trip."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.errors import ModelsError, UnsupportedSampleRateError

SUPPORTED_SAMPLE_RATES = (16000, 22050, 24000, 32000, 44100, 48000)
MODEL_FAMILIES = ("vae", "ddsp")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that shapes a model and how it trains.

    Attributes
    ----------
    samplerate : int
        Audio sample rate in Hz.
    channels : int
        Audio channels (1 mono, 2 stereo).
    latent_size : int
        Latent dimensions per frame.
    ratio : int
        Audio samples per latent frame (= n_bands × product of ``strides``).
    n_bands : int
        PQMF bands. The decoder runs at ``samplerate / n_bands`` at its fastest.
    pqmf_taps : int
        Length of each PQMF filter in band-rate samples (filter length = taps × n_bands).
    capacity : int
        Base width; layer widths are multiples of it.
    causal : bool
        Causal convolutions: streaming decode equals whole decode with no model delay.
    strides : tuple of int
        Up/down-sampling factors between band rate and latent rate.
    res_dilations : tuple of int
        Dilations of the residual convolutions after each decoder upsampling.
    noise : bool
        Add the filtered-noise branch to the decoder output.
    family : {"vae", "ddsp"}
        Model family: ``vae`` is the RAVE-style waveform VAE (:mod:`models.vae`); ``ddsp``
        the pitch/loudness/timbre latent driving a harmonic + noise synthesiser
        (:mod:`models.ddsp`, its own settings in ``extra``; PQMF fields unused).
    """

    samplerate: int = 48000
    channels: int = 1
    latent_size: int = 8
    ratio: int = 256
    n_bands: int = 16
    pqmf_taps: int = 8
    capacity: int = 32
    causal: bool = True
    strides: tuple[int, ...] = (4, 4)
    res_dilations: tuple[int, ...] = (1, 3)
    noise: bool = True
    # training
    batch_size: int = 8
    n_samples: int = 16384
    learning_rate: float = 1e-3
    beta_kl: float = 0.002
    beta_warmup_steps: int = 5000
    mss_scales: tuple[int, ...] = (2048, 1024, 512, 256, 128)
    adversarial: bool = False
    adversarial_start: int = 0
    checkpoint_every: int = 250
    preview_every: int = 500
    extra: dict[str, Any] = field(default_factory=dict)
    family: str = "vae"

    def __post_init__(self) -> None:
        if self.family not in MODEL_FAMILIES:
            raise ModelsError(f"unknown model family {self.family!r}; known: {MODEL_FAMILIES}")
        if self.samplerate not in SUPPORTED_SAMPLE_RATES:
            raise UnsupportedSampleRateError(
                f"samplerate {self.samplerate} Hz is not supported; use one of "
                f"{SUPPORTED_SAMPLE_RATES}"
            )
        if self.channels not in (1, 2):
            raise ModelsError(f"channels must be 1 or 2, got {self.channels}")
        if self.n_bands * math.prod(self.strides) != self.ratio:
            raise ModelsError(
                f"ratio must equal n_bands × product(strides): {self.ratio} != "
                f"{self.n_bands} × {math.prod(self.strides)}"
            )
        if self.n_samples % self.ratio:
            raise ModelsError(
                f"n_samples must be a multiple of ratio: {self.n_samples} % {self.ratio} != 0"
            )
        if self.latent_size < 1:
            raise ModelsError(f"latent_size must be at least 1, got {self.latent_size}")

    @property
    def decoder_widths(self) -> list[int]:
        """Channel width at latent rate, then after each upsampling (fast rate last)."""
        n = len(self.strides)
        return [self.capacity * 2 ** (n - i) for i in range(n + 1)]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/TOML-friendly dict (tuples become lists)."""
        return {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise so typos are caught."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(names)
        if unknown:
            raise ModelsError(f"unknown config keys {sorted(unknown)}; known: {sorted(names)}")
        kwargs: dict[str, Any] = {
            k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()
        }
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")


def factor_ratio(ratio: int, n_bands: int) -> tuple[int, ...]:
    """Split ``ratio / n_bands`` into strides of 4 (and one 2 if needed).

    Raises
    ------
    ModelsError
        If ``ratio`` is not ``n_bands`` times a power of two.
    """
    rest, rem = divmod(ratio, n_bands)
    if rem or rest < 1 or rest & (rest - 1):
        raise ModelsError(f"ratio {ratio} must be n_bands ({n_bands}) times a power of two")
    strides: list[int] = []
    while rest >= 4:
        strides.append(4)
        rest //= 4
    if rest == 2:
        strides.append(2)
    return tuple(strides)


def make_config(name: str = "default", **overrides: Any) -> ModelConfig:
    """Named preset with overrides; ``ratio`` overrides recompute bands and strides.

    Parameters
    ----------
    name : {"tiny", "small", "default", "large"}
        ``tiny`` is for tests (seconds to build/export), ``default`` is the bundled model.
    """
    if name not in CONFIGS:
        raise ModelsError(f"unknown config {name!r}; choose one of {sorted(CONFIGS)}")
    base = dict(CONFIGS[name])
    base.update(overrides)
    if "ratio" in overrides and "strides" not in overrides:
        n_bands = int(base.get("n_bands", 16))
        n_bands = min(n_bands, int(base["ratio"]))
        base["n_bands"] = n_bands
        base["strides"] = factor_ratio(int(base["ratio"]), n_bands)
    return ModelConfig(**base)


CONFIGS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        latent_size=4,
        ratio=64,
        n_bands=16,
        strides=(4,),
        capacity=8,
        pqmf_taps=4,
        res_dilations=(1,),
        batch_size=2,
        n_samples=4096,
        checkpoint_every=50,
        preview_every=50,
        beta_warmup_steps=10,
    ),
    "small": dict(capacity=16),
    "default": dict(),
    "large": dict(capacity=64, latent_size=16, res_dilations=(1, 3, 9)),
    # DDSP family (models/ddsp.py): latent 8 = pitch, loudness, 6 timbre dims.
    "ddsp": dict(family="ddsp", beta_kl=0.01, beta_warmup_steps=2000, checkpoint_every=500),
    "ddsp-tiny": dict(
        family="ddsp",
        latent_size=4,
        ratio=64,
        n_bands=16,
        strides=(4,),
        batch_size=2,
        n_samples=4096,
        checkpoint_every=50,
        preview_every=50,
        beta_warmup_steps=10,
        mss_scales=(512, 256, 128),
        extra=dict(
            n_harmonics=16,
            n_noise=17,
            hidden=16,
            enc_hidden=16,
            pitch_hidden=32,
            n_fft=512,
            loudness_window=256,
            n_mels=16,
        ),
    ),
}

"""Helpers for other layers' tests: a tiny untrained model with the real export path."""

from __future__ import annotations

from pathlib import Path

import torch

from models.config import make_config
from models.export import model_card, save_scripted, script_model, to_toml
from models.vae import VAE


def make_tiny_model(
    path: str | Path,
    *,
    channels: int = 1,
    latent_size: int = 4,
    ratio: int = 64,
    sr: int = 48000,
    streaming: bool = True,
    seed: int = 0,
) -> Path:
    """Build a tiny random-weight model of the real architecture and export it (< 5 s).

    The output is not silent for non-zero latents (nor for zero ones: the noise branch is
    on), so tests can check that sound comes out. A model card is written beside it
    (``path`` with suffix ``.toml``).

    Parameters
    ----------
    path : str or Path
        Where to write the ``.ts`` file.
    channels : int
        1 (mono) or 2 (stereo).
    latent_size : int
        Latent dimensions.
    ratio : int
        Samples per latent frame: a power of two ≥ 2.
    sr : int
        Sample rate stored in the model (attribute ``sr``).
    streaming : bool
        Export with caches in buffers (consecutive ``decode`` calls continue the signal).
    seed : int
        Seeds the random weights: the same arguments give the same file contents.

    Returns
    -------
    Path
        ``path``, now holding the TorchScript model.
    """
    torch.manual_seed(seed)
    cfg = make_config(
        "tiny", channels=channels, latent_size=latent_size, ratio=ratio, samplerate=sr
    )
    model = VAE(cfg)
    out = Path(path)
    scripted = script_model(model, cfg, streaming=streaming)
    save_scripted(scripted, out)
    state = {"step": 0, "data_summary": {"note": "untrained test model"}, "command": ""}
    card = model_card(cfg, state, streaming=streaming, command="models.testing", model=model)
    out.with_suffix(".toml").write_text(to_toml(card))
    return out

"""Model families by name: one place that turns a :class:`ModelConfig` into a module."""

from __future__ import annotations

from torch import nn

from models.config import ModelConfig


def build_model(cfg: ModelConfig) -> nn.Module:
    """A fresh model of ``cfg.family``: :class:`~models.vae.VAE` or
    :class:`~models.ddsp.DDSP`."""
    if cfg.family == "ddsp":
        from models.ddsp import DDSP

        return DDSP(cfg)
    from models.vae import VAE

    return VAE(cfg)


def set_model_streaming(model: nn.Module, streaming: bool, batch_size: int = 1) -> None:
    """Switch every piece of streaming state in ``model`` (cached convolutions, and for the
    DDSP family the analysis buffer and the synthesiser's phase)."""
    from models.layers import set_streaming

    set_streaming(model, streaming, batch_size)
    from models.ddsp import DDSP, set_ddsp_streaming

    if isinstance(model, DDSP):
        set_ddsp_streaming(model, streaming, batch_size)

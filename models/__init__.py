"""Sillage models: RAVE-style VAE and DDSP families, training, nn~-compatible export, the
default model.

Kept light on purpose: importing :mod:`models` pulls no torch. Import the submodules you need
(``models.vae``, ``models.export``, ``models.testing`` …).
"""

from models.errors import (
    CheckpointError,
    CorruptAudioError,
    EmptyDatasetError,
    ModelsError,
    NoReadableAudioError,
    UnsupportedSampleRateError,
)

DEFAULT_MODEL_PATH = "models/default/sillage-default.ts"

__all__ = [
    "DEFAULT_MODEL_PATH",
    "CheckpointError",
    "CorruptAudioError",
    "EmptyDatasetError",
    "ModelsError",
    "NoReadableAudioError",
    "UnsupportedSampleRateError",
]

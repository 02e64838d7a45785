"""Exceptions raised by :mod:`models`. One root class, specific subclasses."""

from __future__ import annotations


class ModelsError(Exception):
    """Root of every error :mod:`models` raises on purpose."""


class EmptyDatasetError(ModelsError):
    """The audio folder holds no file with a supported extension."""


class NoReadableAudioError(ModelsError):
    """Every candidate file failed to decode, or all were too short."""


class CorruptAudioError(ModelsError):
    """One file could not be decoded (raised per file; training skips it and names it)."""


class UnsupportedSampleRateError(ModelsError):
    """A sample rate the model or resampler cannot use."""


class CheckpointError(ModelsError):
    """A run directory, checkpoint or exported model could not be used."""

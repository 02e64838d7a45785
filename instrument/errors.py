"""Every error Sillage raises on purpose, under one root.

Each message says what failed, quotes the value, and names the fix (the way sounddevice and
librosa do). The CLI catches :class:`SillageError` once and prints ``Name: message``; anything
else is a bug and keeps its traceback.

Subclasses keep the builtin base they always had (``ValueError``, ``RuntimeError``), so code
that caught those still does.
"""

from __future__ import annotations


class SillageError(Exception):
    """Root of every error Sillage raises on purpose.

    Parameters
    ----------
    message : str
        What failed, with the bad value.
    fix : str, optional
        What to do about it; appended to the message after ``"; "``.
    """

    def __init__(self, message: str = "", *, fix: str = "") -> None:
        super().__init__(f"{message}; {fix}" if fix else message)
        self.fix = fix


class UserError(SillageError):
    """Anything the performer can fix from the command line; printed without its class name."""


class ModelError(SillageError):
    """A model that cannot be played; the message names what is missing and what was found."""


class PatchError(SillageError, ValueError):
    """A patch that cannot be found or does not make sense; the message names the fix."""


class ScoreError(SillageError, ValueError):
    """A score file line that is not a valid event."""


class OSCInputError(SillageError, ValueError):
    """A message that does not match the address table or the patch; ``kind`` names the class of
    fault (``arity``, ``type``, ``nan``, ``range``, ``unknown_address``, ...) for the counters."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class OutputError(SillageError, RuntimeError):
    """The audio output cannot be opened or kept running."""


class EngineError(SillageError, RuntimeError):
    """The decode process could not start; the message says why and what to do."""


class AudioInputError(SillageError, RuntimeError):
    """The audio input (``--input``, ``--input-file``) cannot be opened or read. Live, the
    instrument says so and plays on without it."""

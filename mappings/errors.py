"""The one error a decoder raises for a message it cannot use.

``mappings/`` knows nothing of sockets or of the engine's protocol module, so decoders raise
:class:`InputError`; the engine-side controller turns it into ``OSCInputError`` with the same
``kind`` (``arity``, ``type``, ``nan``, ``range``, ``unknown_address``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


class InputError(ValueError):
    """A message that does not match its format; ``kind`` names the class of fault."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def floats(
    address: str,
    args: Sequence[Any],
    *,
    n: int | None = None,
    at_least: int | None = None,
    at_most: int | None = None,
    expected: str = "",
) -> np.ndarray:
    """Check and cast OSC arguments to float64 (any numeric type accepted, bools as 0/1).

    Returns
    -------
    ndarray, shape (len(args),), float64

    Raises
    ------
    InputError
        ``arity`` (wrong count), ``type`` (a non-number), ``nan`` (NaN or inf); the message says
        what was expected.
    """
    count = len(args)
    want = expected or (f"{n} numbers" if n is not None else "numbers")
    if (
        (n is not None and count != n)
        or (at_least is not None and count < at_least)
        or (at_most is not None and count > at_most)
    ):
        raise InputError("arity", f"{address} expects {want}, got {count} argument(s)")
    if all(type(v) is float or type(v) is int for v in args):
        # Fast path (nearly every message): plain Python numbers straight from python-osc.
        out = np.array(args, dtype=np.float64)
        if np.isfinite(out).all():
            return out
    out = np.empty(count)
    for k, v in enumerate(args):
        if isinstance(v, (bool, int, float, np.integer, np.floating)):
            f = float(v)
        else:
            raise InputError(
                "type",
                f"{address} argument {k} must be a number ({want}), got {type(v).__name__} {v!r:.40}",
            )
        if not math.isfinite(f):
            raise InputError(
                "nan", f"{address} argument {k} is {f}; the sensor sent a non-finite value"
            )
        out[k] = f
    return out

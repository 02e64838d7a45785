"""Every use of python-rtmixer's private fields, in one place.

Why private fields at all: cffi releases the GIL around every C call, and under a GIL-busy
neighbour each re-acquisition can cost a whole switch interval. So the per-frame bookkeeping
reads the ring's indices straight from its C struct (plain memory reads, no C call), and asks
rtmixer to collect finished actions only when its result queue holds any.

These names are rtmixer internals (checked against ``RTMIXER_VERSION``, pinned in
``pyproject.toml``). ``tests/test_rtmixer_access.py`` fails loudly if a new rtmixer renames
them; :func:`check` says the same at start-up.
"""

from __future__ import annotations

import inspect
from typing import Any

from instrument.errors import OutputError

RTMIXER_VERSION = "0.1.7"

# (where, what): the private names this module relies on
_NEEDED = (
    ("RingBuffer instance", "_ptr"),
    ("_Base.__init__ source", "self._result_q"),
    ("_Base.__init__ source", "self._actions"),
    ("_Base attribute", "_drain_result_q"),
    ("ring struct field", "writeIndex"),
    ("ring struct field", "readIndex"),
    ("ring struct field", "bigMask"),
)


def missing(rtmixer: Any) -> list[str]:
    """The private rtmixer names this module needs that the installed rtmixer lacks."""
    gone: list[str] = []
    ring = rtmixer.RingBuffer(4, 16)
    ptr = getattr(ring, "_ptr", None)
    init_src = inspect.getsource(rtmixer._Base.__init__)
    for where, name in _NEEDED:
        if where == "RingBuffer instance":
            ok = ptr is not None
        elif where == "_Base.__init__ source":
            ok = name in init_src
        elif where == "_Base attribute":
            ok = callable(getattr(rtmixer._Base, name, None))
        else:
            ok = ptr is not None and hasattr(ptr, name)
        if not ok:
            gone.append(f"{where}: {name}")
    return gone


def check(rtmixer: Any) -> None:
    """Raise :class:`OutputError` naming the fix if the installed rtmixer moved its internals."""
    gone = missing(rtmixer)
    if gone:
        version = getattr(rtmixer, "__version__", "?")
        raise OutputError(
            f"rtmixer {version} lacks the internals Sillage reads ({', '.join(gone)})",
            fix=f'install the pinned version: pip install "rtmixer=={RTMIXER_VERSION}"',
        )


def ring_struct(ring: Any) -> Any:
    """The C struct of an ``rtmixer.RingBuffer`` (fields ``writeIndex``, ``readIndex``,
    ``bigMask``); read it for the fill level without a C call."""
    return ring._ptr


def result_queue_struct(mixer: Any) -> Any:
    """The C struct of the mixer's result queue (finished actions land there)."""
    return mixer._result_q._ptr


def drain_results(mixer: Any) -> None:
    """Let rtmixer forget its finished actions (one C call per finished action)."""
    mixer._drain_result_q()


def is_active(mixer: Any, action: Any) -> bool:
    """Whether ``action`` still runs: a dict lookup, kept current by :func:`drain_results`."""
    return action in mixer._actions

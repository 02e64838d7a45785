"""rtmixer internals that instrument/engine/rtmixer_access.py reads: fail loudly if they move."""

from __future__ import annotations

import importlib.metadata

import pytest

from instrument.engine import rtmixer_access

rtmixer = pytest.importorskip("rtmixer")


def test_installed_rtmixer_is_the_pinned_version() -> None:
    assert importlib.metadata.version("rtmixer") == rtmixer_access.RTMIXER_VERSION, (
        "rtmixer changed version: re-check the private fields in rtmixer_access.py, "
        "then update RTMIXER_VERSION and the pin in pyproject.toml"
    )


def test_private_fields_are_there() -> None:
    assert rtmixer_access.missing(rtmixer) == []


def test_ring_struct_reads_the_fill_level() -> None:
    ring = rtmixer.RingBuffer(4, 16)
    rb = rtmixer_access.ring_struct(ring)
    assert (rb.writeIndex - rb.readIndex) & rb.bigMask == 0
    ring.write(b"\0" * 4 * 3)
    assert (rb.writeIndex - rb.readIndex) & rb.bigMask == 3

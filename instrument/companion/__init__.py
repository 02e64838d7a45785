"""Generate the protocol docs and the Max/Pd companion patches from the OSC address table.

Run ``python -m instrument.companion`` to (re)write, from :mod:`instrument.protocol`
(``table.py`` reads the table; ``markdown.py``, ``maxpat.py`` and ``pd.py`` write one format
each; this module writes or checks the files):

- ``docs/osc.md``: every address, its types, range, default, what it does, an example;
- ``docs/max-pd.md``: the "Play from Max / Pure Data" steps (ports and Pd names derived here);
- ``patches/max/sillage-control.maxpat``: sliders, XY pad, gain, panic, load, tag, record,
  state displays;
- ``patches/max/sillage-sensors.maxpat``: forwards an R-IoT stream or a ``[hi]`` device;
- ``patches/pd/sillage-control.pd``: the same controls in vanilla Pure Data.

``--check`` writes nothing; it exits 1 and lists the files that differ from what it would
write (the test suite and ``make lint`` use it), so the docs and patches cannot drift from
what the server accepts. The output is deterministic: no dates, no random ids.

Nothing here knows the address list by heart: widgets are chosen from each entry's types,
range and names, so an address added to the table shows up in the docs and patches on the
next run. Only the three concepts the patches are built around are looked up by path:
``/sillage/latent/<i>`` (one slider per dimension), ``/sillage/subscribe`` (sent on load so
state flows back) and ``/sillage/xy`` (the sensor patch's second target); each is optional.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from instrument.companion.markdown import render_max_pd_md, render_osc_md
from instrument.companion.maxpat import render_max_control, render_max_sensors
from instrument.companion.pd import render_pd_control
from instrument.companion.table import (
    DEFAULT_LATENT_COUNT,
    MAX_CONTROL,
    MAX_PD_MD,
    MAX_SENSORS,
    OSC_MD,
    PD_CONTROL,
    RIOT_PORT,
    pd_name,
)
from instrument.paths import ROOT
from instrument.protocol import ADDRESSES, DEFAULT_OSC_PORT, DEFAULT_STATE_PORT, Address

__all__ = [
    "DEFAULT_LATENT_COUNT",
    "MAX_CONTROL",
    "MAX_PD_MD",
    "MAX_SENSORS",
    "OSC_MD",
    "PD_CONTROL",
    "RIOT_PORT",
    "main",
    "pd_name",
    "render_all",
    "render_max_control",
    "render_max_pd_md",
    "render_max_sensors",
    "render_osc_md",
    "render_pd_control",
    "stale",
]


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def render_all(
    addresses: Sequence[Address] = ADDRESSES,
    *,
    latent_count: int = DEFAULT_LATENT_COUNT,
    osc_port: int = DEFAULT_OSC_PORT,
    state_port: int = DEFAULT_STATE_PORT,
) -> dict[Path, str]:
    """Every generated file, by path relative to the repository root."""
    if latent_count < 1:
        raise ValueError(f"latent_count must be at least 1, got {latent_count}")
    n, o, s = latent_count, osc_port, state_port
    return {
        OSC_MD: render_osc_md(addresses, osc_port=o, state_port=s),
        MAX_PD_MD: render_max_pd_md(addresses, latent_count=n, osc_port=o, state_port=s),
        MAX_CONTROL: render_max_control(addresses, latent_count=n, osc_port=o, state_port=s),
        MAX_SENSORS: render_max_sensors(addresses, latent_count=n, osc_port=o),
        PD_CONTROL: render_pd_control(addresses, latent_count=n, osc_port=o, state_port=s),
    }


def stale(root: Path = ROOT, files: dict[Path, str] | None = None) -> list[Path]:
    """Generated files under ``root`` that are missing or differ from what would be written."""
    files = render_all() if files is None else files
    out = []
    for rel, text in files.items():
        path = root / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            out.append(rel)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or ``--check``) the docs and companion patches."""
    parser = argparse.ArgumentParser(
        prog="python -m instrument.companion",
        description="Generate docs/osc.md, docs/max-pd.md and the Max/Pd companion patches "
        "from instrument/protocol.py.",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 listing files that differ"
    )
    parser.add_argument(
        "--latent-count",
        type=int,
        default=DEFAULT_LATENT_COUNT,
        help="latent sliders in the patches (default %(default)s)",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=ROOT,
        help="repository root to write into (default: this checkout)",
    )
    args = parser.parse_args(argv)
    try:
        files = render_all(latent_count=args.latent_count)
    except ValueError as exc:
        parser.exit(2, f"{type(exc).__name__}: {exc}\n")
    if args.check:
        bad = stale(args.root, files)
        for rel in bad:
            print(f"{rel}: out of date; run: python -m instrument.companion", file=sys.stderr)
        return 1 if bad else 0
    for rel, text in files.items():
        path = args.root / rel
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {rel}")
    return 0

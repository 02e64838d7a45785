"""Patches: TOML presets that declare inputs, conditioning and mapping chains.

A patch file (``patches/<name>.toml``, format in ``docs/control.md``)::

    [patch]        name, description
    [engine]       smoothing_ms, gain_db, scale (engine defaults while the patch plays)
    [[input]]      one per device: kind (riot-v2, riot-v3, comote-v2, comote-v3, zigsim,
                   sensors2osc, touchosc, hands, midi, wekinator, osc), port, name, ids, ...
    [conditioning."<signal>"]   range, centre, filter (one_euro/one_pole), dead_zone, curve,
                                out, rest, hold_s, ease_s (see mappings.conditioning)
    [mapping]      kind (direct, matrix, loop, regression), inputs = ["<signal>", ...], ...
    [voice]        kind = "keyboard": MIDI notes play the model's pitch dimension
                   (instrument.patch.voice); [pitch]: a signal plays it in a scale
    [listen]       what the instrument does to the audio it hears (mix, bias, scale, freeze,
                   noise, transpose_st, seed; see mappings.listen); an [[input]] of kind
                   "audio" maps the input's descriptors

:func:`load_patch` reads it and builds a :class:`~instrument.patch.chain.ChainController`
(or the plain :class:`~instrument.control.DirectController` when the patch declares no inputs
and no mapping). Every mistake raises :class:`PatchError` naming the file, the key and the fix.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instrument.errors import PatchError
from instrument.patch.build import build_controller
from instrument.patch.context import PatchContext
from instrument.patch.contract import Controller, DirectController
from instrument.paths import PATCH_DIR
from mappings.listen import ListenSettings, parse_listen

SECTIONS = {"patch", "engine", "input", "conditioning", "mapping", "voice", "pitch", "listen"}


@dataclass
class Patch:
    """A loaded patch. ``midi`` is the MIDI port spec to open (:func:`instrument.control.midi_in.start_midi`),
    None when the patch uses no MIDI."""

    name: str
    path: Path | None
    controller: Controller
    engine: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    midi: str | None = None
    listen: ListenSettings | None = None


def resolve(name_or_path: str | Path) -> Path:
    """Find a patch by name (``dancer-riot``) in ``patches/`` or by path."""
    p = Path(name_or_path)
    candidates = (
        [p, PATCH_DIR / p, PATCH_DIR / f"{p}.toml"] if p.suffix != ".toml" else [p, PATCH_DIR / p]
    )
    for c in candidates:
        if c.is_file():
            return c
    shipped = ", ".join(sorted(q.stem for q in PATCH_DIR.glob("*.toml")))
    raise PatchError(
        f"no patch {str(name_or_path)!r}; shipped patches: {shipped}; or give a path to a .toml file"
    )


def load_patch(name_or_path: str | Path, *, context: PatchContext) -> Patch:
    """Read a patch and build its controller for a model of ``context.latent_size`` dimensions."""
    path = resolve(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PatchError(
            f"{path}: not valid TOML ({exc}); fix the file or pick another patch"
        ) from None
    meta = data.get("patch", {})
    engine = data.get("engine", {})
    name = str(meta.get("name", path.stem))
    unknown = sorted(set(data) - SECTIONS)
    if unknown:
        raise PatchError(
            f"{path}: unknown section(s) {unknown}; a patch has [patch], [engine], [[input]], "
            '[conditioning."<signal>"], [mapping], [voice], [pitch] and [listen]'
        )
    listen = None
    if "listen" in data:
        try:
            listen = parse_listen(data["listen"], context.latent_size)
        except ValueError as exc:
            raise PatchError(f"{path}: {exc}") from None
    controller: Controller
    midi: str | None = None
    plain = not data.get("input") and not data.get("voice") and not data.get("pitch")
    if plain and data.get("mapping", {}).get("kind", "direct") == "direct":
        controller = DirectController()
    else:
        try:
            chain = build_controller(name, data, path.parent, context)
        except (ValueError, TypeError, KeyError, OSError) as exc:
            raise PatchError(f"{path}: {exc}") from None
        controller, midi = chain, chain.midi
    return Patch(
        name=name,
        path=path,
        controller=controller,
        engine=dict(engine),
        description=str(meta.get("description", "")),
        midi=midi,
        listen=listen,
    )

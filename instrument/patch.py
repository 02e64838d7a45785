"""Patches: TOML presets that declare inputs, conditioning and mapping chains.

Minimal first version (the control-layer work extends it): a patch names itself, sets engine
defaults, and yields a :class:`~instrument.control.Controller`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from instrument.control import Controller, DirectController

PATCH_DIR = Path(__file__).resolve().parent.parent / "patches"


class PatchError(ValueError):
    """A patch that cannot be found or does not make sense; the message names the fix."""


@dataclass(frozen=True)
class PatchContext:
    """What a patch may use from the engine while it is built (on a side thread).

    ``encode`` maps audio, shape (channels, n_samples) float32 at ``samplerate``, to latents,
    shape (latent_size, n_frames); None for decoder-only models.
    """

    latent_size: int
    samplerate: int
    encode: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass
class Patch:
    name: str
    path: Path | None
    controller: Controller
    engine: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def resolve(name_or_path: str | Path) -> Path:
    """Find a patch by name (``dancer-riot``) in ``patches/`` or by path."""
    p = Path(name_or_path)
    candidates = [p, PATCH_DIR / p, PATCH_DIR / f"{p}.toml"] if p.suffix != ".toml" else [p, PATCH_DIR / p]
    for c in candidates:
        if c.is_file():
            return c
    shipped = ", ".join(sorted(q.stem for q in PATCH_DIR.glob("*.toml")))
    raise PatchError(f"no patch {str(name_or_path)!r}; shipped patches: {shipped}; or give a path to a .toml file")


def load_patch(name_or_path: str | Path, *, context: PatchContext) -> Patch:
    path = resolve(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PatchError(f"{path}: not valid TOML ({exc}); fix the file or pick another patch") from None
    meta = data.get("patch", {})
    engine = data.get("engine", {})
    return Patch(
        name=str(meta.get("name", path.stem)),
        path=path,
        controller=DirectController(),
        engine=dict(engine),
        description=str(meta.get("description", "")),
    )

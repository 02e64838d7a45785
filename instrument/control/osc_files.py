"""Which files ``/sillage/model`` and ``/sillage/patch`` may open (control process).

A sender names a model or a patch; the name is resolved *inside* the model folders (the
repository's ``models/``, the folder of the model the engine started with, ``--models-dir``)
or the patch folders (``patches/``, the folder of the starting patch, ``--patches-dir``). A
path anywhere else is taken only with ``--allow-paths``. Files over the size limit are
refused before anything reads them. A name that is missing, unreadable or outside the folders
gets one and the same answer, so OSC cannot be used to learn which files exist elsewhere.

The resolved absolute path is what crosses to the decode process (and what a recorded score
keeps).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from instrument.errors import OSCInputError
from instrument.paths import DEFAULT_MODEL, PATCH_DIR

MODEL_SUFFIXES = ("", ".ts")
PATCH_SUFFIXES = ("", ".toml")


@dataclass(frozen=True)
class FileRules:
    """Folders and limits for files named over OSC."""

    model_dirs: tuple[Path, ...] = (DEFAULT_MODEL.parent.parent,)
    patch_dirs: tuple[Path, ...] = (PATCH_DIR,)
    allow_paths: bool = False
    max_model_bytes: int = 512 * 2**20
    max_patch_bytes: int = 2**20

    @staticmethod
    def for_start(
        model: str | Path,
        patch: str | Path,
        *,
        models_dirs: tuple[str, ...] = (),
        patches_dirs: tuple[str, ...] = (),
        allow_paths: bool = False,
    ) -> FileRules:
        """The rules for an engine started with ``model`` and ``patch``: their folders, the
        shipped ones, and the ones named on the command line."""
        mdirs = [DEFAULT_MODEL.parent.parent, Path(model).parent, *map(Path, models_dirs)]
        pdirs = [PATCH_DIR, *map(Path, patches_dirs)]
        if Path(patch).suffix == ".toml":
            pdirs.append(Path(patch).parent)
        return FileRules(
            model_dirs=_unique(mdirs), patch_dirs=_unique(pdirs), allow_paths=allow_paths
        )

    def resolve(self, kind: str, name: str) -> str:
        """The absolute path of model/patch ``name``; OSCInputError ``file`` if refused."""
        dirs, suffixes, limit = (
            (self.model_dirs, MODEL_SUFFIXES, self.max_model_bytes)
            if kind == "model"
            else (self.patch_dirs, PATCH_SUFFIXES, self.max_patch_bytes)
        )
        if "\x00" in name or not name.strip():
            raise self._no(kind, name, dirs)
        candidates: list[Path] = []
        given = Path(name).expanduser()
        if given.is_absolute():
            candidates.append(given)
        else:
            for d in dirs:
                candidates += [d / f"{name}{s}" for s in suffixes]
        for c in candidates:
            path = Path(os.path.realpath(c))
            inside = any(path.is_relative_to(d) for d in dirs)
            if not (inside or self.allow_paths):
                continue
            try:
                st = path.stat()
                readable = path.is_file() and os.access(path, os.R_OK)
            except OSError:
                continue
            if not readable:
                continue
            if st.st_size > limit:
                raise OSCInputError(
                    "file",
                    f"{kind} {name!r} is {st.st_size / 2**20:.0f} MB, over the "
                    f"{limit / 2**20:.0f} MB limit for files loaded over OSC",
                )
            return str(path)
        raise self._no(kind, name, dirs)

    def _no(self, kind: str, name: str, dirs: tuple[Path, ...]) -> OSCInputError:
        where = ", ".join(str(d) for d in dirs)
        flag = "--models-dir" if kind == "model" else "--patches-dir"
        return OSCInputError(
            "file",
            f"no {kind} {name[:120]!r} to load in {where}; name one there, add a folder with "
            f"{flag} DIR, or start with --allow-paths to load any path",
        )


def _unique(dirs: list[Path]) -> tuple[Path, ...]:
    out: list[Path] = []
    for d in dirs:
        real = Path(os.path.realpath(d))
        if real not in out:
            out.append(real)
    return tuple(out)

"""Patches: TOML presets that declare inputs, conditioning and a mapping chain.

- :mod:`~instrument.patch.contract`: what the engine asks of a patch (``Controller``) and the
  state it hands over (``ControlState``);
- :mod:`~instrument.patch.context`: what a patch may use from the engine while it is built;
- :mod:`~instrument.patch.load`: find and read a patch file;
- :mod:`~instrument.patch.build`: build the mapping chain from its tables;
- :mod:`~instrument.patch.chain`: the chain itself (sources → conditioning → mapping).

Used by both processes: the decode process runs the chain, the control process uses only its
pure ``validate``.
"""

from instrument.errors import PatchError
from instrument.patch.context import PatchContext
from instrument.patch.load import Patch, load_patch, resolve
from instrument.paths import PATCH_DIR

__all__ = ["PATCH_DIR", "Patch", "PatchContext", "PatchError", "load_patch", "resolve"]

"""The nn~ model contract, stated and read in one place.

A model is a TorchScript module with methods ``encode``, ``decode`` (and ``forward``, optional
``prior``). Each method ``m`` has a buffer ``m_params = [in_channels, in_ratio, out_channels,
out_ratio]``; for ``decode`` that is ``[latent_size, ratio, audio_channels, 1]``. The sample
rate is the attribute ``sr`` (RAVE), ``sampling_rate`` (older RAVE) or the method
``get_sample_rate()`` (nn-tilde 1.6). ``get_methods()`` lists the methods when present.

Beside the model, an optional card ``<model>.toml`` (or ``.json``) says what the module cannot:
``delay_samples`` (top level or under ``[model]``) and an optional ``[latent]`` table naming
the latent dimensions a controller may address directly::

    [latent]
    pitch_dim = 0               # int: the dimension that carries pitch (optional, as are all)
    pitch_scale = 1.0           # float: latent units per octave, z = pitch_scale*log2(f0/pitch_ref_hz)
    pitch_ref_hz = 440.0        # float, default 440.0
    loudness_dim = 1            # int
    loudness_ref_db = -20.0     # float
    loudness_db_per_unit = 6.0  # float
    timbre_dims = [2, 3]        # list of int: the other dimensions, when the model says so

Other keys (notes such as ``loudness_definition``) are allowed and ignored.

Nothing else in the project parses ``*_params``, ``sr`` or the card: the engine's runtime, the
map builder (``ui/corpus.py``) and export all read them through :func:`read_contract`.
This module imports no torch: it reads attributes of a module someone else loaded.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, astuple, dataclass, field
from pathlib import Path
from typing import Any

from models.errors import ModelsError

METHODS = ("encode", "decode", "forward", "prior")
SAMPLERATE_ATTRIBUTES = ("sr", "sampling_rate")


class ContractError(ModelsError, ValueError):
    """A module or card that breaks the nn~ contract; the message names what is missing and
    what was found."""


@dataclass(frozen=True)
class MethodParams:
    """One method's ``<method>_params`` buffer."""

    in_channels: int
    in_ratio: int
    out_channels: int
    out_ratio: int


@dataclass(frozen=True)
class LatentCard:
    """The card's optional ``[latent]`` table. Every field is None when the card does not give
    it (``pitch_ref_hz`` defaults to 440.0 once a ``[latent]`` table is there)."""

    pitch_dim: int | None = None
    pitch_scale: float | None = None
    pitch_ref_hz: float | None = None
    loudness_dim: int | None = None
    loudness_ref_db: float | None = None
    loudness_db_per_unit: float | None = None
    timbre_dims: tuple[int, ...] | None = None

    def to_table(self) -> dict[str, Any]:
        """The fields the card gives, as the ``[latent]`` table dict (what
        ``mappings.keyboard.VoiceLatent`` takes); {} for a card without one."""
        table = {k: v for k, v in asdict(self).items() if v is not None}
        if "timbre_dims" in table:
            table["timbre_dims"] = list(table["timbre_dims"])
        return table

    def pitch_to_latent(self, f0_hz: float) -> float:
        """The latent value of pitch ``f0_hz``: ``pitch_scale * log2(f0_hz / pitch_ref_hz)``."""
        if self.pitch_scale is None or self.pitch_ref_hz is None:
            raise ContractError("this model's card declares no pitch ([latent] pitch_scale)")
        return self.pitch_scale * math.log2(f0_hz / self.pitch_ref_hz)

    def latent_to_pitch(self, z: float) -> float:
        """The pitch in Hz that latent value ``z`` stands for (inverse of
        :meth:`pitch_to_latent`)."""
        if self.pitch_scale is None or self.pitch_ref_hz is None or self.pitch_scale == 0:
            raise ContractError("this model's card declares no pitch ([latent] pitch_scale)")
        return self.pitch_ref_hz * 2.0 ** (z / self.pitch_scale)


_LATENT_INTS = ("pitch_dim", "loudness_dim")
_LATENT_FLOATS = (
    "pitch_scale",
    "pitch_ref_hz",
    "loudness_ref_db",
    "loudness_db_per_unit",
)


@dataclass(frozen=True)
class ModelContract:
    """What a model declares: its methods, their params, its rate, and its card."""

    name: str
    samplerate: int
    methods: tuple[str, ...]
    decode: MethodParams
    encode: MethodParams | None
    delay_samples: int | None
    card: dict[str, Any] = field(default_factory=dict)
    latent: LatentCard = field(default_factory=LatentCard)

    @property
    def latent_size(self) -> int:
        return self.decode.in_channels

    @property
    def ratio(self) -> int:
        return self.decode.in_ratio

    @property
    def channels(self) -> int:
        return self.decode.out_channels

    @property
    def has_encode(self) -> bool:
        return "encode" in self.methods


def method_params(module: Any, method: str) -> MethodParams | None:
    """``<method>_params`` as four integers, or None when missing or malformed."""
    buf = getattr(module, f"{method}_params", None)
    if buf is None:
        return None
    try:
        values = [int(v) for v in buf.tolist()]
    except Exception:
        return None
    return MethodParams(*values) if len(values) == 4 else None


def samplerate(module: Any) -> int | None:
    """The module's sample rate (``sr``, ``sampling_rate``, ``get_sample_rate()``), or None."""
    for attr in SAMPLERATE_ATTRIBUTES:
        value = getattr(module, attr, None)
        if value is not None:
            try:
                return int(value)
            except (TypeError, ValueError):
                pass
    getter = getattr(module, "get_sample_rate", None)
    if getter is not None:
        try:
            return int(getter())
        except Exception:
            return None
    return None


def methods(module: Any) -> tuple[str, ...]:
    """The module's methods: ``get_methods()`` if it has one, else the nn~ names it has."""
    getter = getattr(module, "get_methods", None)
    if getter is not None:
        try:
            return tuple(str(m) for m in getter())
        except Exception:
            pass
    return tuple(m for m in METHODS if hasattr(module, m))


def card_path(model_path: str | Path) -> Path | None:
    """The card beside a model (``MODEL.toml``, else ``MODEL.json``), or None."""
    path = Path(model_path)
    for card in (path.with_suffix(".toml"), path.with_suffix(".json")):
        if card.is_file():
            return card
    return None


def twin_path(model_path: str | Path) -> Path | None:
    """The ONNX twin beside a model (``MODEL.onnx``, written by :mod:`models.onnx_export`:
    the same decoder with its streaming state as explicit inputs/outputs), or None."""
    twin = Path(model_path).with_suffix(".onnx")
    return twin if twin.is_file() else None


def noise_free_decode(module: Any) -> Any:
    """The export's decode with its noise branch off, or None when the model has none.

    Sillage exports wrap their model as ``module.model`` whose ``decode(z, add_noise)`` is
    compiled into the TorchScript file; ``add_noise=False`` makes the output a function of
    the latents alone, which is how an ONNX twin is checked against it. RAVE exports have no
    such method (and no twin).
    """
    inner = getattr(module, "model", None)
    decode = getattr(inner, "decode", None) if inner is not None else None
    return decode if callable(decode) else None


def read_card(model_path: str | Path) -> dict[str, Any]:
    """The card beside a model as a dict, or {} (no card, or one that does not parse)."""
    card = card_path(model_path)
    if card is None:
        return {}
    try:
        if card.suffix == ".toml":
            return tomllib.loads(card.read_text(encoding="utf-8"))
        data = json.loads(card.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def card_delay(card: dict[str, Any]) -> int | None:
    """``delay_samples`` from a card (top level or under ``[model]``), or None when unknown."""
    model = card.get("model")
    delay = card.get(
        "delay_samples", model.get("delay_samples") if isinstance(model, dict) else None
    )
    return int(delay) if isinstance(delay, (int, float)) else None


def card_latent(card: dict[str, Any], *, latent_size: int, name: str = "model") -> LatentCard:
    """The card's ``[latent]`` table, checked; :class:`LatentCard` of Nones when there is none.

    Raises
    ------
    ContractError
        A key of the wrong type, a dimension outside ``0..latent_size-1``, or
        a pitch reference that is not a positive frequency. Keys it does not know are ignored.
    """
    table = card.get("latent")
    if table is None:
        return LatentCard()
    where = f"{name} card [latent]"
    if not isinstance(table, dict):
        raise ContractError(f"{where} must be a table, got {type(table).__name__}")
    values: dict[str, Any] = {"pitch_ref_hz": 440.0}

    def is_dim(v: Any) -> bool:
        return not isinstance(v, bool) and isinstance(v, int) and 0 <= v < latent_size

    for key in _LATENT_INTS:
        if key in table:
            v = table[key]
            if not is_dim(v):
                raise ContractError(
                    f"{where}: {key} = {v!r} must be a dimension 0..{latent_size - 1}"
                )
            values[key] = v
    for key in _LATENT_FLOATS:
        if key in table:
            v = table[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ContractError(f"{where}: {key} = {v!r} must be a finite number")
            values[key] = float(v)
    if "timbre_dims" in table:
        dims = table["timbre_dims"]
        if not isinstance(dims, list) or not all(is_dim(v) for v in dims):
            raise ContractError(
                f"{where}: timbre_dims = {dims!r} must be a list of dimensions 0..{latent_size - 1}"
            )
        values["timbre_dims"] = tuple(dims)
    if values["pitch_ref_hz"] <= 0:
        raise ContractError(f"{where}: pitch_ref_hz = {values['pitch_ref_hz']} must be > 0 Hz")
    return LatentCard(**values)


def read_contract(module: Any, model_path: str | Path) -> ModelContract:
    """Read and check the contract of a loaded TorchScript ``module`` from ``model_path``.

    Raises
    ------
    ContractError
        No ``decode``, no usable ``decode_params``, params that make no sense, no sample rate,
        or a bad ``[latent]`` table; the message names what is missing and what was found.
    """
    path = Path(model_path)
    found_methods = methods(module)
    if "decode" not in found_methods or not hasattr(module, "decode"):
        raise ContractError(
            f"{path.name} has no 'decode' method (found methods: {', '.join(found_methods) or 'none'}); "
            "Sillage needs an nn~-style model with decode and decode_params"
        )
    decode = method_params(module, "decode")
    if decode is None:
        attrs = [a for a in dir(module) if a.endswith("_params")]
        raise ContractError(
            f"{path.name} has no usable 'decode_params' buffer "
            f"[latent_size, ratio, channels, 1] (found: {', '.join(attrs) or 'no *_params'})"
        )
    if decode.in_channels < 1 or decode.in_ratio < 1 or decode.out_channels not in (1, 2):
        raise ContractError(
            f"{path.name}: decode_params {list(astuple(decode))} make no sense "
            "(expected latent_size >= 1, ratio >= 1, 1 or 2 channels)"
        )
    sr = samplerate(module)
    if sr is None or sr <= 0:
        raise ContractError(
            f"{path.name} does not say its sample rate "
            "(looked for attribute 'sr', 'sampling_rate' and method get_sample_rate())"
        )
    card = read_card(path)
    return ModelContract(
        name=path.stem,
        samplerate=sr,
        methods=found_methods,
        decode=decode,
        encode=method_params(module, "encode") if "encode" in found_methods else None,
        delay_samples=card_delay(card),
        card=card,
        latent=card_latent(card, latent_size=decode.in_channels, name=path.name),
    )

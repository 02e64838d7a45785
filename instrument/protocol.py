"""The one OSC address table of Sillage.

Every address the engine accepts or sends is declared here once. The OSC server validates
against it, ``docs/osc.md`` and the Max/Pd companion patches are generated from it
(``python -m instrument.companion``), so the server, the docs and the patches cannot drift.

Types follow OSC type tags: ``f`` a number (any numeric OSC type is accepted and cast to
float), ``i`` an integer (floats with an integral value are accepted), ``s`` a string,
``f*`` one or more numbers, ``""`` no argument. Ranges are inclusive; a value outside its
range is rejected with a message (never clamped silently), except where ``clamp`` is set.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from instrument.errors import OSCInputError

PREFIX = "/sillage"
DEFAULT_OSC_PORT = 7770
DEFAULT_STATE_PORT = 7771


@dataclass(frozen=True, slots=True)
class Address:
    """One OSC address: what it takes, what it does.

    ``path`` may end in ``/<i>`` (an integer index, e.g. a latent dimension).
    ``direction`` is ``"in"`` (to the engine) or ``"out"`` (state the engine sends).
    ``route`` says who handles an input: ``"engine"`` (the decode loop, handler
    ``DecodeLoop._on_<key>``), ``"side"`` (the control process answers it; it changes no sound)
    or ``"patch"`` (the patch's controller).
    """

    path: str
    types: str
    doc: str
    range: tuple[float, float] | None = None
    default: Any = None
    example: str = ""
    direction: str = "in"
    group: str = "play"
    clamp: bool = False
    names: tuple[str, ...] = field(default_factory=tuple)
    route: str = "engine"

    @property
    def key(self) -> str:
        """The path as a Python name: ``/sillage/latent/<i>`` → ``latent_i``."""
        return self.path.removeprefix(PREFIX + "/").replace("/<i>", "_i").replace("/", "_")


# The table. Keep it sorted by group; the docs and patches follow this order.
ADDRESSES: tuple[Address, ...] = (
    # --- play --------------------------------------------------------------------------
    Address(
        "/sillage/latent",
        "f*",
        "Set the whole latent target, one number per dimension (fewer numbers set the first "
        "dimensions and leave the others). Smoothed by the trajectory, clamped to the latent "
        "range.",
        range=(-8.0, 8.0),
        default=0.0,
        example="/sillage/latent 0.5 -1.2 0 0 0 0 0 0",
        names=("z",),
    ),
    Address(
        "/sillage/latent/<i>",
        "f",
        "Set one latent dimension <i> (0-based).",
        range=(-8.0, 8.0),
        default=0.0,
        example="/sillage/latent/0 1.5",
        names=("value",),
    ),
    Address(
        "/sillage/xy",
        "ff",
        "Move to a position on the latent map (0..1 on both axes, the map's bounding box). "
        "Needs a map (the default model ships one); the latent is interpolated from the "
        "nearest map points.",
        range=(0.0, 1.0),
        default=0.5,
        example="/sillage/xy 0.25 0.75",
        names=("x", "y"),
    ),
    Address(
        "/sillage/centre",
        "f*",
        "Set the latent centre that mappings move around (and where panic returns).",
        range=(-8.0, 8.0),
        default=0.0,
        example="/sillage/centre 0 0 0 0 0 0 0 0",
        names=("z",),
    ),
    Address(
        "/sillage/scale",
        "f",
        "Scale the latent around the centre. Values above 1 go beyond the corpus on purpose "
        "(divergent use).",
        range=(0.0, 8.0),
        default=1.0,
        example="/sillage/scale 2",
        names=("scale",),
    ),
    Address(
        "/sillage/smoothing_ms",
        "f",
        "Latent smoothing time constant in milliseconds (0 = jump; jumps are still de-clicked).",
        range=(0.0, 10000.0),
        default=30.0,
        example="/sillage/smoothing_ms 80",
        names=("ms",),
    ),
    Address(
        "/sillage/gain_db",
        "f",
        "Output gain in dB. The safety limiter stays after it.",
        range=(-96.0, 12.0),
        default=0.0,
        example="/sillage/gain_db -6",
        names=("db",),
        clamp=True,
    ),
    Address(
        "/sillage/panic",
        "",
        "Fade out, return the latent to the centre, reset filters; sound comes back when new "
        "control arrives.",
        example="/sillage/panic",
        group="play",
    ),
    # --- listen (the audio input: --input, --input-file) ---------------------------------
    Address(
        "/sillage/listen/mix",
        "f",
        "Mix between the controllers' latent (0) and the latent encoded from the audio input "
        "(1), every dimension; glides over the patch's [listen] mix_smoothing_ms (30 ms).",
        range=(0.0, 1.0),
        default=0.0,
        example="/sillage/listen/mix 0.5",
        group="listen",
        names=("mix",),
    ),
    Address(
        "/sillage/listen/mix/<i>",
        "f",
        "Mix of one latent dimension <i>: e.g. pitch from the singer (1), timbre from the "
        "dancer (0).",
        range=(0.0, 1.0),
        default=0.0,
        example="/sillage/listen/mix/0 1",
        group="listen",
        names=("mix",),
    ),
    Address(
        "/sillage/listen/bias",
        "f*",
        "Add to the input's latent, one number per dimension (fewer numbers set the first "
        "dimensions).",
        range=(-8.0, 8.0),
        default=0.0,
        example="/sillage/listen/bias 0 0 0.5 0",
        group="listen",
        names=("bias",),
    ),
    Address(
        "/sillage/listen/bias/<i>",
        "f",
        "Add to one dimension <i> of the input's latent.",
        range=(-8.0, 8.0),
        default=0.0,
        example="/sillage/listen/bias/2 0.5",
        group="listen",
        names=("bias",),
    ),
    Address(
        "/sillage/listen/scale",
        "f*",
        "Multiply the input's latent, one number per dimension (before the bias).",
        range=(-8.0, 8.0),
        default=1.0,
        example="/sillage/listen/scale 1 1 2 2",
        group="listen",
        names=("scale",),
    ),
    Address(
        "/sillage/listen/scale/<i>",
        "f",
        "Multiply one dimension <i> of the input's latent.",
        range=(-8.0, 8.0),
        default=1.0,
        example="/sillage/listen/scale/2 2",
        group="listen",
        names=("scale",),
    ),
    Address(
        "/sillage/listen/freeze",
        "i",
        "1 holds every dimension of the input's latent where it is now (bias, scale, "
        "transpose and noise still apply), 0 follows the input again.",
        range=(0, 1),
        default=0,
        example="/sillage/listen/freeze 1",
        group="listen",
        names=("on",),
    ),
    Address(
        "/sillage/listen/freeze/<i>",
        "f",
        "Hold (>= 0.5) or follow (< 0.5) one dimension <i> of the input's latent (a number, "
        "so a bank of sliders or toggles can send it).",
        range=(0.0, 1.0),
        default=0.0,
        example="/sillage/listen/freeze/1 1",
        group="listen",
        names=("on",),
    ),
    Address(
        "/sillage/listen/noise",
        "f",
        "Add noise to every dimension of the input's latent (standard deviation, latent "
        "units; seeded offline).",
        range=(0.0, 8.0),
        default=0.0,
        example="/sillage/listen/noise 0.2",
        group="listen",
        names=("amount",),
    ),
    Address(
        "/sillage/listen/noise/<i>",
        "f",
        "Add noise to one dimension <i> of the input's latent.",
        range=(0.0, 8.0),
        default=0.0,
        example="/sillage/listen/noise/3 0.5",
        group="listen",
        names=("amount",),
    ),
    Address(
        "/sillage/listen/transpose",
        "f",
        "Transpose the input in semitones, on the pitch dimension the model's card declares "
        "([latent] pitch_dim, pitch_scale); refused for models without one.",
        range=(-48.0, 48.0),
        default=0.0,
        example="/sillage/listen/transpose -12",
        group="listen",
        names=("semitones",),
    ),
    # --- session -----------------------------------------------------------------------
    Address(
        "/sillage/model",
        "s",
        "Load another model: a TorchScript .ts file named in the model folders (models/, the "
        "starting model's folder, --models-dir; any path only with --allow-paths; 512 MB at "
        "most). It warms up off the audio path and replaces the current one at a frame "
        "boundary with a short crossfade. Loads run one at a time.",
        example="/sillage/model my-model",
        group="session",
        names=("path",),
    ),
    Address(
        "/sillage/patch",
        "s",
        "Load a patch without a click: a name in patches/ (or --patches-dir), or a .toml "
        "file there (any path only with --allow-paths).",
        example="/sillage/patch dancer-riot",
        group="session",
        names=("name",),
    ),
    Address(
        "/sillage/tag",
        "s",
        'Mark this moment with a word ("keep", "drop", ...). Tags go to the session record '
        "and can feed the next training round.",
        example="/sillage/tag keep",
        group="session",
        names=("word",),
    ),
    Address(
        "/sillage/record",
        "i",
        "1 starts recording the session (events and audio), 0 stops.",
        range=(0, 1),
        default=0,
        example="/sillage/record 1",
        group="session",
        names=("on",),
    ),
    Address(
        "/sillage/subscribe",
        "i",
        "Send state to this port on the sender's host (a Max [udpreceive] port). The sender's "
        "own source port is never used: Max's [udpsend] sends from a random port.",
        range=(1, 65535),
        default=DEFAULT_STATE_PORT,
        example="/sillage/subscribe 7771",
        group="session",
        names=("port",),
        route="side",
    ),
    Address(
        "/sillage/unsubscribe",
        "i",
        "Stop sending state to this port on the sender's host.",
        range=(1, 65535),
        default=DEFAULT_STATE_PORT,
        example="/sillage/unsubscribe 7771",
        group="session",
        names=("port",),
        route="side",
    ),
    # --- artist loop (datasets, fine-tunes, versions) ---------------------------------------
    Address(
        "/sillage/dataset",
        "ss",
        "Build a training folder datasets/<name> from every recording in the record folder: "
        'whole recordings when <word> is "", else the 2 s around each /sillage/tag <word>. '
        "Runs in its own process; the result comes back as /sillage/state/dataset.",
        example="/sillage/dataset rehearsal1 keep",
        group="artist",
        names=("name", "word"),
        route="side",
    ),
    Address(
        "/sillage/dataset/region",
        "ss",
        "Build datasets/<name> from the corpus audio behind the map points inside a region "
        "(drawn on the map or sent with /sillage/region).",
        example="/sillage/dataset/region breathy breath",
        group="artist",
        names=("name", "region"),
        route="side",
    ),
    Address(
        "/sillage/train",
        "sfsi",
        "Fine-tune the model playing on a dataset (a name in datasets/ or a folder) for <minutes>"
        " in a low-priority process; export it as models/user/<name>-v<N>.ts (never "
        "overwritten) with its map; <swap> 1 plays it when ready, with a crossfade. Progress: "
        "/sillage/state/train.",
        range=(0.0, 1440.0),
        example="/sillage/train rehearsal1 3 breath 1",
        group="artist",
        names=("dataset", "minutes", "name", "swap"),
        route="side",
    ),
    Address(
        "/sillage/train/stop",
        "",
        "Stop the running dataset or training job (no version is written).",
        example="/sillage/train/stop",
        group="artist",
        route="side",
    ),
    Address(
        "/sillage/model/history",
        "",
        "Send the models played this session (/sillage/state/history) and every fine-tuned "
        "version on disk (/sillage/state/versions).",
        example="/sillage/model/history",
        group="artist",
        route="side",
    ),
    Address(
        "/sillage/model/undo",
        "",
        "Go back to the model played before this one (crossfaded).",
        example="/sillage/model/undo",
        group="artist",
        route="side",
    ),
    Address(
        "/sillage/ab",
        "",
        "A/B: switch between the last two models played, back and forth (crossfaded).",
        example="/sillage/ab",
        group="artist",
        route="side",
    ),
    # --- learn (regression by demonstration, MIDI learn) ---------------------------------
    Address(
        "/sillage/learn",
        "s",
        'Regression by demonstration: "record" pairs the current inputs with the current '
        'latent, "stop" ends recording, "train", "run", "pause", "clear", '
        '"save" (examples to the patch\'s file); "midi" (learn: the next moved MIDI '
        'control is bound); "calibrate" / "calibrate_stop" (capture sensor ranges), '
        '"centre" (the current pose becomes the centre).',
        example="/sillage/learn record",
        group="learn",
        names=("command",),
        route="patch",
    ),
    # --- labels (shared with the UI) ------------------------------------------------------
    Address(
        "/sillage/label",
        "sff",
        "Create or move a named label on the map (x, y in 0..1); relayed to every subscriber.",
        example="/sillage/label breath 0.3 0.6",
        group="labels",
        names=("name", "x", "y"),
        route="side",
    ),
    Address(
        "/sillage/label/delete",
        "s",
        "Delete a named label; relayed to every subscriber.",
        example="/sillage/label/delete breath",
        group="labels",
        names=("name",),
        route="side",
    ),
    Address(
        "/sillage/region",
        "sffff",
        "Create or move a named region (a rectangle x0 y0 x1 y1 on the map, 0..1); relayed to "
        "every subscriber.",
        example="/sillage/region drums 0.8 0.7 0.95 0.85",
        group="labels",
        names=("name", "x0", "y0", "x1", "y1"),
        route="side",
    ),
    Address(
        "/sillage/region/delete",
        "s",
        "Delete a named region; relayed to every subscriber.",
        example="/sillage/region/delete drums",
        group="labels",
        names=("name",),
        route="side",
    ),
    # --- state out ---------------------------------------------------------------------
    Address(
        "/sillage/state/latent",
        "f*",
        "The latent being played (after smoothing), ~30 Hz.",
        direction="out",
        group="state",
    ),
    Address(
        "/sillage/state/xy",
        "ff",
        "The played latent's position on the map (0..1), when a map is loaded.",
        direction="out",
        group="state",
    ),
    Address(
        "/sillage/state/level",
        "ff",
        "Output level: RMS and peak in dBFS over the last state period.",
        direction="out",
        group="state",
    ),
    Address(
        "/sillage/state/input",
        "ffi",
        "The audio input, when listening (--input): RMS and peak in dBFS over the last state "
        "period, and input overruns since start (samples lost; should stay 0).",
        direction="out",
        group="state",
    ),
    Address(
        "/sillage/state/underruns",
        "i",
        "Audio underruns since start (should stay 0).",
        direction="out",
        group="state",
    ),
    Address(
        "/sillage/state/latency_ms",
        "ffffff",
        "Control-to-sound latency: measured median, then the budget terms: frame wait, "
        "prebuffer, audio block, device, model delay (ms; -1 = unknown).",
        direction="out",
        group="state",
    ),
    Address(
        "/sillage/state/prebuffer",
        "ifis",
        "The prebuffer in use: frames, ms, 1 when adaptive (--prebuffer auto), and its last "
        "change and why (sent on subscribe and on every change).",
        direction="out",
        group="state",
    ),
    Address(
        "/sillage/state/decode_ms",
        "ff",
        "Decode time per frame, p50 and p99 (ms).",
        direction="out",
        group="state",
    ),
    Address(
        "/sillage/state/model",
        "siii",
        "The model playing: name, sample rate, ratio, latent size (sent on subscribe and on "
        "every change).",
        direction="out",
        group="state",
    ),
    Address(
        "/sillage/state/label",
        "sff",
        "A label was created or moved (name, x, y).",
        direction="out",
        group="state",
    ),
    Address(
        "/sillage/state/label/delete",
        "s",
        "A label was deleted.",
        direction="out",
        group="state",
    ),
    Address(
        "/sillage/state/region",
        "sffff",
        "A region was created or moved (name, x0, y0, x1, y1).",
        direction="out",
        group="state",
    ),
    Address(
        "/sillage/state/region/delete",
        "s",
        "A region was deleted.",
        direction="out",
        group="state",
    ),
    Address(
        "/sillage/state/tag",
        "sff",
        "A moment was tagged (/sillage/tag): the word and where the played latent was on the "
        "map (x, y), when a map is loaded.",
        direction="out",
        group="state",
    ),
    Address(
        "/sillage/state/train",
        "siffs",
        "A training job's progress: phase (train, export, map, done, error, warning), step, "
        "loss (-1 unknown), minutes left, and the model file or the message.",
        direction="out",
        group="state",
    ),
    Address(
        "/sillage/state/dataset",
        "sss",
        "A dataset was written: name, folder, its summary.",
        direction="out",
        group="state",
    ),
    Address(
        "/sillage/state/history",
        "s*",
        "The models played this session, oldest first (the last one is playing).",
        direction="out",
        group="state",
    ),
    Address(
        "/sillage/state/versions",
        "s*",
        "Every fine-tuned version in models/user, by name then version.",
        direction="out",
        group="state",
    ),
    Address(
        "/sillage/state/error",
        "s",
        "The last rejected input, with what was expected, or an engine fault (a bad frame "
        "from the model, a fallback, a dead decode process, a prebuffer raised for a big "
        "model) with what was done and the fix (rate-limited per kind).",
        direction="out",
        group="state",
    ),
)

INPUTS: tuple[Address, ...] = tuple(a for a in ADDRESSES if a.direction == "in")
OUTPUTS: tuple[Address, ...] = tuple(a for a in ADDRESSES if a.direction == "out")


def lookup(path: str) -> tuple[Address, int | None]:
    """Find the table entry for ``path``; return it and the ``<i>`` index if any.

    Raises
    ------
    OSCInputError
        ``kind="unknown_address"`` when nothing matches.
    """
    entry = _EXACT.get(path)
    if entry is not None:
        return entry, None
    head, _, tail = path.rpartition("/")
    entry = _INDEXED.get(head)
    if entry is not None:
        if tail.isdigit():
            return entry, int(tail)
        raise OSCInputError(
            "bad_index", f"{path}: expected {entry.path} with <i> a non-negative integer"
        )
    raise OSCInputError(
        "unknown_address", f"unknown address {path!r}; see docs/osc.md for the address list"
    )


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def validate(
    path: str, args: tuple[Any, ...] | list[Any]
) -> tuple[Address, int | None, tuple[Any, ...]]:
    """Check one incoming message against the table and normalise its arguments.

    Numbers of any OSC type become ``float`` (``i`` arguments become ``int``); NaN, inf,
    out-of-range values, wrong arity and wrong types raise :class:`OSCInputError` with a
    message that quotes the value and says what was expected.
    """
    entry, index = lookup(path)
    if entry.direction != "in":
        raise OSCInputError(
            "unknown_address", f"{path} is a state address the engine sends, not one it accepts"
        )
    want = entry.types
    args = tuple(args)
    variadic = want.endswith("*")
    if variadic:
        if len(args) < 1:
            raise OSCInputError("arity", f"{path} expects one or more numbers, got none")
        kinds = "f" * len(args)
    else:
        kinds = want
        if len(args) != len(kinds):
            raise OSCInputError(
                "arity",
                f"{path} expects {len(kinds)} argument(s) ({_describe(kinds)}), got {len(args)}: "
                f"{_short(args)}; e.g. {entry.example}",
            )
    out: list[Any] = []
    for k, (kind, value) in enumerate(zip(kinds, args, strict=True)):
        if kind == "s":
            if not isinstance(value, str):
                raise OSCInputError("type", f"{path} argument {k} must be a string, got {value!r}")
            out.append(value)
            continue
        number = _as_float(value)
        if number is None:
            raise OSCInputError(
                "type",
                f"{path} argument {k} must be a number, got {type(value).__name__} {value!r}",
            )
        if not math.isfinite(number):
            raise OSCInputError("nan", f"{path} argument {k} is {number}; send a finite number")
        if kind == "i":
            if number != int(number):
                raise OSCInputError("type", f"{path} argument {k} must be an integer, got {number}")
            number = int(number)
        if entry.range is not None:
            lo, hi = entry.range
            if not lo <= number <= hi:
                if entry.clamp:
                    number = min(max(number, lo), hi)
                else:
                    raise OSCInputError(
                        "range", f"{path} argument {k} = {number} is outside [{lo:g}, {hi:g}]"
                    )
        out.append(number)
    return entry, index, tuple(out)


ROUTES = ("engine", "side", "patch")


def accept(
    address: str,
    args: tuple[Any, ...] | list[Any],
    patch_validate: Callable[[str, tuple[Any, ...]], tuple[Any, ...]] | None = None,
) -> tuple[str, str | None, int | None, tuple[Any, ...]]:
    """Check one message where it enters; say where it goes.

    ``/sillage/...`` addresses are checked against the table (``/sillage/learn/...`` belongs
    to the patch); anything else goes to the patch, checked by ``patch_validate`` (the patch's
    pure ``Controller.validate``) when given.

    Returns
    -------
    route : str
        ``"engine"``, ``"side"`` or ``"patch"``.
    path : str or None
        The table entry's path (``/sillage/latent/<i>``), None for patch addresses.
    index : int or None
        The ``<i>`` of an indexed address.
    args : tuple
        Normalised arguments.

    Raises
    ------
    OSCInputError
        With ``kind`` for the counters and a message that says what was expected.
    """
    if address.startswith(PREFIX + "/") and not address.startswith(PREFIX + "/learn/"):
        entry, index, checked = validate(address, args)
        return entry.route, entry.path, index, checked
    checked = tuple(args)
    if patch_validate is not None:
        checked = patch_validate(address, checked)
    return "patch", None, None, checked


def _describe(kinds: str) -> str:
    names = {"f": "number", "i": "integer", "s": "string"}
    return ", ".join(names[k] for k in kinds) if kinds else "no arguments"


def _short(args: tuple[Any, ...]) -> str:
    text = repr(args)
    return text if len(text) < 80 else text[:77] + "..."


assert all(a.route in ROUTES for a in ADDRESSES)
_EXACT = {a.path: a for a in ADDRESSES if not a.path.endswith("/<i>")}
_INDEXED = {a.path[: -len("/<i>")]: a for a in ADDRESSES if a.path.endswith("/<i>")}

"""Build a :class:`ChainController` from a parsed patch (the TOML tables of ``instrument.patch``).

Errors are ``ValueError`` with the key and the rule; :func:`instrument.patch.load_patch` adds
the file name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from instrument.patch.chain import ChainController, MappingSpec, Signal
from instrument.patch.context import PatchContext
from instrument.patch.voice import build_voice_part
from mappings.conditioning import Conditioner, ConditionerSpec
from mappings.gesture import MotionParams
from mappings.imu import FORMATS
from mappings.matrix import LoopMapping, MatrixMapping, build_matrix
from mappings.regression import Demonstrations
from mappings.sources import (
    AudioSource,
    HandsSource,
    ImuSource,
    MidiSource,
    Source,
    VectorSource,
)

DEFAULT_NAMES = {
    "riot-v2": "riot", "riot-v3": "riot", "comote-v2": "comote", "comote-v3": "comote",
    "zigsim": "zigsim", "sensors2osc": "phone", "touchosc": "touchosc", "hands": "hands",
    "midi": "midi", "wekinator": "wek", "audio": "mic",
}  # fmt: skip
INPUT_KINDS = (*FORMATS, "hands", "midi", "wekinator", "osc", "audio")
MAPPING_KINDS = ("direct", "matrix", "loop", "regression")


def _source(spec: dict[str, Any], k: int) -> Source:
    where = f"[[input]] #{k + 1}"
    kind = spec.get("kind")
    if kind not in INPUT_KINDS:
        raise ValueError(f"{where}: kind must be one of {', '.join(INPUT_KINDS)}, got {kind!r}")
    name = str(spec.get("name", DEFAULT_NAMES.get(kind, "")))
    if not name or "." in name:
        raise ValueError(f"{where}: name must be a non-empty word without dots, got {name!r}")
    port = spec.get("port")
    if kind != "midi" and port is not None and not (isinstance(port, int) and 1 <= port <= 65535):
        raise ValueError(f"{where}: port must be an integer 1..65535, got {port!r}")
    if kind in FORMATS:
        params = MotionParams(**spec.get("features", {}))
        return ImuSource(
            name, kind, port=port, ids=[str(i) for i in spec.get("ids", [])], params=params,
            single=bool(spec.get("single", False)),
        )  # fmt: skip
    if kind == "hands":
        return HandsSource(
            name, port=port if port is not None else 7500, mirrored=bool(spec.get("mirrored", False)),
            swap_labels=bool(spec.get("swap_labels", False)),
        )  # fmt: skip
    if kind == "audio":
        if port is not None:
            raise ValueError(
                f"{where}: an audio input takes no port (it is the instrument's --input)"
            )
        return AudioSource(name)
    if kind == "midi":
        return MidiSource(
            name, device=str(spec.get("port", "")), channel=int(spec.get("channel", 0))
        )
    if kind == "wekinator":
        return VectorSource(
            name, "/wek/inputs", port=port if port is not None else 6448,
            n_inputs=int(spec.get("n_inputs", 0)), kind="wekinator",
        )  # fmt: skip
    address = spec.get("address")
    if (
        not isinstance(address, str)
        or not address.startswith("/")
        or address.startswith("/sillage")
    ):
        raise ValueError(
            f'{where}: an osc input needs address = "/your/address" (not /sillage/...)'
        )
    return VectorSource(name, address, port=port, n_inputs=int(spec.get("n_inputs", 0)))


def _signal(name: str, sources: list[Source], cond: dict[str, Any]) -> Signal:
    prefix = name.split(".", 1)[0]
    source = next((s for s in sources if s.name == prefix), None)
    if source is None:
        names = ", ".join(s.name for s in sources) or "none declared"
        raise ValueError(
            f"mapping input {name!r} names no input (inputs: {names}); signals are <input name>.<...>"
        )
    table = dict(cond.get(name, {}))
    hold = table.pop("hold_s", source.hold_s)
    if hold is not None and hold < 0:
        hold = None
    ease = float(table.pop("ease_s", 1.0))
    spec = ConditionerSpec.from_dict(table, where=f'[conditioning."{name}"]') if table else None
    return Signal(Conditioner(spec), hold, ease)


def _read_loop(path: Path, samplerate: int) -> np.ndarray:
    """Audio file (WAV, FLAC, AIFF...) → (channels, n) float32 at ``samplerate``."""
    import soundfile
    from scipy.signal import resample_poly

    data, sr = soundfile.read(path, dtype="float32", always_2d=True)
    audio = np.ascontiguousarray(data.T)
    if sr != samplerate:
        g = np.gcd(int(sr), int(samplerate))
        audio = resample_poly(audio, samplerate // g, sr // g, axis=1).astype(np.float32)
    return audio


def build_controller(
    name: str, data: dict[str, Any], base: Path, context: PatchContext
) -> ChainController:
    """Sources, signals and mapping from a patch's tables."""
    inputs = data.get("input", [])
    if not isinstance(inputs, list):
        raise ValueError("inputs are declared as [[input]] tables (an array of tables)")
    sources = [_source(spec, k) for k, spec in enumerate(inputs)]
    # IMU inputs may share a name (one phone, whichever app it runs); others must not.
    names = [s.name for s in sources if not isinstance(s, ImuSource)]
    imu_names = {s.name for s in sources if isinstance(s, ImuSource)}
    if len(set(names)) != len(names) or imu_names & set(names):
        raise ValueError(
            f"two inputs share a name ({[s.name for s in sources]}); give each a distinct name"
        )
    midi = next((s.device for s in sources if isinstance(s, MidiSource)), None)
    mp = dict(data.get("mapping", {}))
    kind = mp.get("kind", "direct")
    if kind not in MAPPING_KINDS:
        raise ValueError(f"[mapping] kind must be one of {', '.join(MAPPING_KINDS)}, got {kind!r}")
    wek = next((s for s in sources if s.kind == "wekinator"), None)
    input_names = list(mp.get("inputs", []))
    if kind in ("matrix", "loop") and not input_names:
        raise ValueError(f'[mapping] kind = "{kind}" needs inputs = ["<signal>", ...]')
    if kind == "regression" and not input_names and wek is None:
        raise ValueError(
            '[mapping] kind = "regression" needs inputs = [...] (or a wekinator input)'
        )
    part = build_voice_part(data, context.latent, context.latent_size)
    voice_inputs = part.signal_names() if part is not None else []
    # Declared voice inputs may be more than the model has dimensions for: still known names.
    declared = [
        *(data["voice"].get("timbre", []) if isinstance(data.get("voice"), dict) else []),
        *([data["pitch"].get("input")] if isinstance(data.get("pitch"), dict) else []),
    ]
    if part is not None and "voice" in data and not any(isinstance(s, MidiSource) for s in sources):
        raise ValueError(
            '[voice] plays MIDI notes: declare a [[input]] with kind = "midi" (notes may also '
            "come over OSC as /midi/note, or from a score)"
        )
    cond = data.get("conditioning", {})
    known = set(input_names) | set(voice_inputs) | {n for n in declared if isinstance(n, str)}
    extra = sorted(set(cond) - known)
    if extra:
        raise ValueError(
            f"[conditioning] for {extra}, which are not mapping, [voice] timbre or [pitch] "
            f"inputs {sorted(known)}"
        )
    signals = {n: _signal(n, sources, cond) for n in [*input_names, *voice_inputs]}
    x_rest = np.array([signals[n].conditioner.rest for n in input_names])
    spec = MappingSpec(kind=kind, inputs=input_names)
    latent = context.latent_size
    if kind in ("matrix", "loop"):
        matrix = build_matrix(mp.get("matrix"), len(input_names), latent) * float(
            mp.get("gain", 1.0)
        )
        spec.matrix = MatrixMapping(matrix, x_rest)
        if kind == "loop":
            spec.loop = _loop(mp, base, context, matrix, x_rest, input_names)
    elif kind == "regression":
        n_in = len(input_names) or (wek.n_inputs if isinstance(wek, VectorSource) else 0) or 1
        spec.demos = Demonstrations(
            n_in, latent, model=str(mp.get("model", "knn")), k=int(mp.get("k", 4)),
            hidden=int(mp.get("hidden", 16)),
        )  # fmt: skip
        spec.record_interval_s = float(mp.get("record_interval_s", 0.05))
        if "examples" in mp:
            spec.examples_path = (base / str(mp["examples"])).resolve()
            if spec.examples_path.is_file():
                demos = Demonstrations.load(spec.examples_path)
                if demos.n_outputs != latent:
                    demos = _refit_outputs(demos, latent)
                spec.demos = demos
    host = str(mp.get("output_host", "127.0.0.1"))
    port = int(mp.get("output_port", 12000))
    return ChainController(
        name, latent, sources, spec, signals, wek_output=(host, port), midi=midi, voice=part
    )


def _refit_outputs(demos: Demonstrations, latent: int) -> Demonstrations:
    """Examples saved for another latent size: pad or cut the outputs (and retrain)."""
    out = Demonstrations(demos.n_inputs, latent, model=demos.model_kind, k=demos.knn.k)
    for x, y in zip(demos.inputs, demos.outputs, strict=True):
        z = np.zeros(latent)
        n = min(latent, len(y))
        z[:n] = y[:n]
        out.add(x, z)
    out.train()
    return out


def _loop(
    mp: dict[str, Any], base: Path, context: PatchContext, matrix: np.ndarray, x_rest: np.ndarray,
    input_names: list[str],
) -> LoopMapping:  # fmt: skip
    if context.encode is None:
        raise ValueError(
            '[mapping] kind = "loop" encodes an audio loop, but this model has no encode '
            "method (decoder-only); use a model with encode or a matrix mapping"
        )
    if "loop" not in mp:
        raise ValueError('[mapping] kind = "loop" needs loop = "<audio file>.wav"')
    audio = _read_loop((base / str(mp["loop"])).resolve(), context.samplerate)
    z = np.asarray(context.encode(audio), dtype=np.float64)
    if z.ndim == 3:
        z = z[0]
    if z.ndim != 2 or z.shape[1] < 1:
        raise ValueError(f"encode returned shape {z.shape}; expected (latent_size, n_frames)")
    frame_rate = z.shape[1] * context.samplerate / audio.shape[1]
    speed = mp.get("speed_input")
    speed_index = None
    if speed is not None:
        if speed not in input_names:
            raise ValueError(
                f"[mapping] speed_input {speed!r} must be one of the inputs {input_names}"
            )
        speed_index = input_names.index(speed)
    return LoopMapping(z[: context.latent_size], frame_rate, matrix, x_rest, speed_index)

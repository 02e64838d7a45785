"""Input sources: turn one device's messages into named scalar signals.

A source owns some addresses. ``check(address, args)`` validates a message (pure, for the OSC
thread) and ``signals(t, address, args)`` decodes it into ``{signal_name: value}`` (stateful:
gesture features, on the decode worker). Signal names are ``<source name>.<...>``:

==============  ================================================================
source kind     signals
==============  ================================================================
IMU formats     ``<name>.<sensor id>.<feature>`` (features: mappings.gesture)
``hands``       ``<name>.left|right.<feature>`` (features: mappings.hands)
``midi``        ``<name>.cc<number>``, ``.note``, ``.velocity``, ``.bend``,
                ``.pressure`` (0..1, bend -1..1)
``wekinator``   ``<name>.<k>`` for each number of ``/wek/inputs``
``osc``         ``<name>.<k>`` for each number of a declared address
``audio``       ``<name>.loudness`` (dBFS), ``.centroid`` (Hz), ``.pitch`` (Hz),
                ``.voiced``, ``.onset`` (0/1), ``.flux``: descriptors of the
                instrument's audio input (mappings.descriptors), once per frame
==============  ================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from mappings.descriptors import DESCRIPTOR_NAMES
from mappings.errors import InputError, floats
from mappings.gesture import MotionFeatures, MotionParams
from mappings.hands import (
    HAND_FEATURES,
    assign_sides,
    decode_generic,
    decode_mediapipe,
    generic_side,
    hand_features,
)
from mappings.imu import Format, get_format

Signals = dict[str, float]

#: The engine delivers the input's descriptors to the patch once per frame as this message
#: (arguments in ``DESCRIPTOR_NAMES`` order); another analyser may send it over OSC too.
AUDIO_ADDRESS = "/audio/descriptors"


class Source:
    """Base class: a named device whose messages become signals."""

    kind = ""
    #: Default "hold forever" (None) or hold time before easing to rest, for this kind.
    hold_s: float | None = None

    def __init__(self, name: str, port: int | None = None) -> None:
        self.name = name
        self.port = port

    def owns(self, address: str) -> bool:
        raise NotImplementedError

    def check(self, address: str, args: Sequence[Any]) -> tuple[Any, ...]:
        """Validate and normalise (pure). Raise :class:`InputError`."""
        raise NotImplementedError

    def signals(self, t: float, address: str, args: Sequence[Any]) -> Signals:
        """Decode a checked message at time ``t``. Runs on the decode worker."""
        raise NotImplementedError

    def reset(self) -> None:
        return None


class ImuSource(Source):
    """One IMU format, several sensors routed by id (``ids`` empty: every id).

    ``single`` names every sensor ``0`` (phones whose id is a UUID nobody types in a patch).
    """

    hold_s = 0.5

    def __init__(
        self, name: str, fmt: str, *, port: int | None = None, ids: Sequence[str] = (),
        params: MotionParams | None = None, single: bool = False,
    ) -> None:  # fmt: skip
        self.format: Format = get_format(fmt)
        super().__init__(name, port if port is not None else self.format.default_port)
        self.kind = fmt
        self.ids = tuple(str(i) for i in ids)
        self.single = single
        self.params = params or MotionParams()
        self._features: dict[str, MotionFeatures] = {}

    def owns(self, address: str) -> bool:
        m = self.format.match(address)
        return m is not None and (not self.ids or m[0] in self.ids)

    def check(self, address: str, args: Sequence[Any]) -> tuple[Any, ...]:
        m = self.format.match(address)
        if m is None:
            raise InputError("unknown_address", f"{address} is not a {self.format.name} address")
        if self.ids and m[0] not in self.ids:
            raise InputError(
                "unknown_address",
                f"{address}: sensor id {m[0]!r} not routed (patch ids: {list(self.ids)})",
            )
        self.format.decode(address, m[1], args)
        return tuple(float(a) if not isinstance(a, str) else a for a in args)

    def signals(self, t: float, address: str, args: Sequence[Any]) -> Signals:
        m = self.format.match(address)
        if m is None:
            return {}
        sensor_id, kind = m
        if self.single:
            sensor_id = "0"  # one device at a time, whatever id or UUID the app sends
        fields = self.format.decode(address, kind, args)
        feats = self._features.get(sensor_id)
        if feats is None:
            feats = self._features[sensor_id] = MotionFeatures(self.params)
        prefix = f"{self.name}.{sensor_id}."
        return {prefix + k: v for k, v in feats.update(t, fields).items()}

    def reset(self) -> None:
        for f in self._features.values():
            f.reset()


class HandsSource(Source):
    kind = "hands"
    hold_s = 0.3

    def __init__(
        self, name: str = "hands", *, port: int | None = 7500, mirrored: bool = False,
        swap_labels: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(name, port)
        self.mirrored = mirrored
        self.swap_labels = swap_labels

    def owns(self, address: str) -> bool:
        return address == "/mediapipe/hands" or address in ("/hand/left", "/hand/right")

    def check(self, address: str, args: Sequence[Any]) -> tuple[Any, ...]:
        if address == "/mediapipe/hands":
            decode_mediapipe(address, args)
        elif address in ("/hand/left", "/hand/right"):
            decode_generic(address, args)
        else:
            raise InputError(
                "unknown_address", f"{address}: expected /mediapipe/hands or /hand/left|right"
            )
        return tuple(float(a) for a in args)

    def signals(self, t: float, address: str, args: Sequence[Any]) -> Signals:
        out: Signals = {}
        if address == "/mediapipe/hands":
            seen = assign_sides(decode_mediapipe(address, args), mirrored=self.mirrored)
            for side in ("left", "right"):
                if side not in (s for s, _ in seen):
                    out[f"{self.name}.{side}.present"] = 0.0
        else:
            side = generic_side(address, swap_labels=self.swap_labels)
            seen = [(side, decode_generic(address, args))]
        for side, lm in seen:
            for k, v in hand_features(lm, side=side, mirrored=self.mirrored).items():
                out[f"{self.name}.{side}.{k}"] = v
        return out


class MidiSource(Source):
    """MIDI as the :mod:`instrument.control.midi_in` adapter (or any OSC sender) delivers it.

    ``/midi/cc <channel 1-16> <control 0-127> <value 0-127>``, ``/midi/note <channel> <note>
    <velocity>`` (velocity 0 = note off), ``/midi/bend <channel> <value -8192..8191>``,
    ``/midi/pressure <channel> <value 0-127>``. ``channel`` 0 listens to all channels.
    """

    kind = "midi"
    _ranges: ClassVar[dict[str, tuple[tuple[int, int], ...]]] = {
        "/midi/cc": ((1, 16), (0, 127), (0, 127)),
        "/midi/note": ((1, 16), (0, 127), (0, 127)),
        "/midi/bend": ((1, 16), (-8192, 8191)),
        "/midi/pressure": ((1, 16), (0, 127)),
        "/midi/program": ((1, 16), (0, 127)),
    }

    def __init__(self, name: str = "midi", *, device: str = "", channel: int = 0) -> None:
        super().__init__(name, None)
        self.device = device
        self.channel = int(channel)
        self._note = -1

    def owns(self, address: str) -> bool:
        return address in self._ranges

    def check(self, address: str, args: Sequence[Any]) -> tuple[Any, ...]:
        ranges = self._ranges.get(address)
        if ranges is None:
            raise InputError(
                "unknown_address", f"{address}: expected one of {', '.join(self._ranges)}"
            )
        names = {2: "channel value", 3: "channel number value"}[len(ranges)]
        v = floats(address, args, n=len(ranges), expected=f"{len(ranges)} integers ({names})")
        out = []
        for k, (x, (lo, hi)) in enumerate(zip(v, ranges, strict=True)):
            if x != int(x) or not lo <= x <= hi:
                raise InputError(
                    "range", f"{address} argument {k} = {x:g} must be an integer in [{lo}, {hi}]"
                )
            out.append(int(x))
        return tuple(out)

    def signals(self, t: float, address: str, args: Sequence[Any]) -> Signals:
        a = self.check(address, args)
        if self.channel and a[0] != self.channel:
            return {}
        n = self.name
        if address == "/midi/cc":
            return {f"{n}.cc{a[1]}": a[2] / 127.0}
        if address == "/midi/note":
            if a[2] > 0:
                self._note = a[1]
                return {f"{n}.note": a[1] / 127.0, f"{n}.velocity": a[2] / 127.0}
            if a[1] == self._note:
                return {f"{n}.velocity": 0.0}
            return {}
        if address == "/midi/bend":
            return {f"{n}.bend": a[1] / 8192.0}
        if address == "/midi/pressure":
            return {f"{n}.pressure": a[1] / 127.0}
        return {}


class VectorSource(Source):
    """Numbers of one address as signals ``<name>.0``, ``<name>.1``... (Wekinator, Max, Pd)."""

    def __init__(
        self, name: str, address: str, *, port: int | None = None, n_inputs: int = 0,
        kind: str = "osc",
    ) -> None:  # fmt: skip
        super().__init__(name, port)
        self.address = address
        self.n_inputs = int(n_inputs)
        self.kind = kind

    def owns(self, address: str) -> bool:
        return address == self.address

    def check(self, address: str, args: Sequence[Any]) -> tuple[Any, ...]:
        if self.n_inputs:
            v = floats(address, args, n=self.n_inputs, expected=f"{self.n_inputs} numbers")
        else:
            v = floats(address, args, at_least=1, expected="one or more numbers")
        return tuple(float(x) for x in v)

    def signals(self, t: float, address: str, args: Sequence[Any]) -> Signals:
        v = floats(address, args, at_least=1)
        return {f"{self.name}.{k}": float(x) for k, x in enumerate(v)}


class AudioSource(Source):
    """The instrument's audio input, as descriptors (``--input`` / ``--input-file``)."""

    kind = "audio"

    def __init__(self, name: str = "mic") -> None:
        super().__init__(name, None)

    def owns(self, address: str) -> bool:
        return address == AUDIO_ADDRESS

    def check(self, address: str, args: Sequence[Any]) -> tuple[Any, ...]:
        n = len(DESCRIPTOR_NAMES)
        v = floats(address, args, n=n, expected=f"{n} numbers ({', '.join(DESCRIPTOR_NAMES)})")
        return tuple(float(x) for x in v)

    def signals(self, t: float, address: str, args: Sequence[Any]) -> Signals:
        p = self.name + "."
        return {p + k: float(v) for k, v in zip(DESCRIPTOR_NAMES, args, strict=False)}


def signal_names(source: Source, ids: Sequence[str] = ()) -> list[str]:
    """The signal names a source can produce (for docs and patch checking; IMU needs ids)."""
    from mappings.gesture import FEATURES

    if isinstance(source, ImuSource):
        return [f"{source.name}.{i}.{f}" for i in (ids or source.ids or ("0",)) for f in FEATURES]
    if isinstance(source, HandsSource):
        return [f"{source.name}.{s}.{f}" for s in ("left", "right") for f in HAND_FEATURES]
    if isinstance(source, AudioSource):
        return [f"{source.name}.{k}" for k in DESCRIPTOR_NAMES]
    return []

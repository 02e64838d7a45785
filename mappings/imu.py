"""Decoders for the OSC formats of wearable and phone motion sensors.

Each format turns one message into ``(sensor_id, fields)`` with units made common:

==========  =========================================  ===============
field       meaning                                    unit
==========  =========================================  ===============
``accel``   acceleration (x, y, z), gravity included   g (9.81 m/s²)
``gyro``    rotation rate (x, y, z)                    deg/s
``quat``    orientation quaternion (w, x, y, z)        unit quaternion
``euler``   orientation (yaw/alpha, pitch/beta, roll)  deg
``gravity`` gravity direction (x, y, z)                g
``button``  button or key state                        0 / 1
==========  =========================================  ===============

Formats (``FORMATS``; sources: the ISMM ``sc-motion`` format notes for R-IoT and CoMote, the
apps' own documentation for the others):

- ``riot-v2``: Bitalino R-IoT v2, ``/<id>/raw`` with 22 floats (accel g, gyro deg/ms, mag,
  temperature, 2 buttons, 2 analog inputs, quaternion w x y z, Euler deg, heading), port 8888.
- ``riot-v3`` and ``comote-v3``: ``/riot/v3/<id>/accelerometer [x y z (timestamp frequency)]``
  (m/s²), ``/gyroscope`` (rad/s), ``/gravity``, ``/absoluteorientation/quaternion [x y z w ..]``,
  ``/absoluteorientation/euler [alpha beta gamma ..]`` (deg), ``/control/<key> [value ..]``;
  CoMote v3 the same under ``/comote/v3/<id>/``.
- ``comote-v2``: ``/comote/<id>/devicemotion [interval x y z alpha beta gamma]``
  (accelerationIncludingGravity m/s², rotationRate deg/s), ``/comote/<id>/buttonA|buttonB``.
- ``zigsim``: ``/ZIGSIM/<device>/accel x y z`` (G, gravity removed by iOS),
  ``/gyro`` (rad/s), ``/gravity`` (G), ``/quaternion x y z w``.
- ``sensors2osc`` (Android): ``/accelerometer x y z`` (m/s²), ``/gyroscope`` (rad/s),
  ``/rotationvector x y z [w ..]``, ``/gravity`` (m/s²); one phone per port (id ``0``).
- ``touchosc``: ``/accxyz x y z`` (g); one device per port (id ``0``).

Matching is pure string work (it runs on the OSC thread for validation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mappings.errors import floats

G_MS2 = 9.80665
RAD2DEG = 180.0 / math.pi

Fields = dict[str, np.ndarray]


class Format:
    """One sensor OSC format: which addresses it owns and how to decode them."""

    name = ""
    default_port = 0
    prefixes: tuple[str, ...] = ()

    def match(self, address: str) -> tuple[str, str] | None:
        """Return ``(sensor_id, kind)`` if this format owns ``address``, else None."""
        raise NotImplementedError

    def decode(self, address: str, kind: str, args: Sequence[Any]) -> Fields:
        """Decode the arguments of a matched message; raise :class:`InputError` if unusable."""
        raise NotImplementedError


def _xyz(address: str, args: Sequence[Any], what: str) -> np.ndarray:
    # v3-style messages carry [x y z timestamp frequency]; accept the bare triple too.
    v = floats(address, args, at_least=3, at_most=5, expected=f"{what} x y z [timestamp frequency]")
    return v[:3]


class RiotV2(Format):
    name = "riot-v2"
    default_port = 8888

    def match(self, address: str) -> tuple[str, str] | None:
        parts = address.split("/")
        if len(parts) == 3 and parts[2] == "raw" and parts[1]:
            return parts[1], "raw"
        return None

    def decode(self, address: str, kind: str, args: Sequence[Any]) -> Fields:
        v = floats(address, args, n=22, expected="22 numbers (R-IoT v2 raw frame)")
        return {
            "accel": v[0:3],
            "gyro": v[3:6] * 1000.0,  # deg/ms on the wire
            "button": v[10:11],
            "quat": v[14:18],
            "euler": v[18:21],
        }


class V3(Format):
    """The unified ISMM v3 format shared by R-IoT v3 and CoMote v3."""

    default_port = 8888

    def __init__(self, source: str) -> None:
        self.source = source
        self.name = f"{source}-v3"
        self._head = f"/{source}/v3/"
        self.prefixes = (self._head,)

    def match(self, address: str) -> tuple[str, str] | None:
        if not address.startswith(self._head):
            return None
        rest = address[len(self._head) :]
        sensor_id, _, kind = rest.partition("/")
        if not sensor_id or (kind not in _V3_KINDS and not kind.startswith("control/")):
            return None
        return sensor_id, kind

    def decode(self, address: str, kind: str, args: Sequence[Any]) -> Fields:
        if kind == "accelerometer":
            return {"accel": _xyz(address, args, "acceleration (m/s²)") / G_MS2}
        if kind == "gyroscope":
            return {"gyro": _xyz(address, args, "rotation rate (rad/s)") * RAD2DEG}
        if kind == "gravity":
            return {"gravity": _xyz(address, args, "gravity (m/s²)") / G_MS2}
        if kind == "absoluteorientation/quaternion":
            q = floats(
                address, args, at_least=4, at_most=6, expected="x y z w [timestamp frequency]"
            )
            return {"quat": np.array([q[3], q[0], q[1], q[2]])}
        if kind == "absoluteorientation/euler":
            return {"euler": _xyz(address, args, "alpha beta gamma (deg)")}
        if kind.startswith("control/"):
            v = floats(address, args, at_least=1, expected="a control value [timestamp]")
            return {"button": v[:1]}
        return {}  # magnetometer, heading, barometer, battery: accepted, not used


_V3_KINDS = {
    "accelerometer",
    "gyroscope",
    "magnetometer",
    "gravity",
    "absoluteorientation/quaternion",
    "absoluteorientation/euler",
    "barometer",
    "heading",
    "battery",
}


class ComoteV2(Format):
    name = "comote-v2"
    default_port = 8901
    prefixes = ("/comote/",)

    def match(self, address: str) -> tuple[str, str] | None:
        parts = address.split("/")
        if (
            len(parts) == 4
            and parts[1] == "comote"
            and parts[2] != "v3"
            and parts[3] in ("devicemotion", "buttonA", "buttonB")
        ):
            return parts[2], parts[3]
        return None

    def decode(self, address: str, kind: str, args: Sequence[Any]) -> Fields:
        if kind == "devicemotion":
            v = floats(address, args, n=7, expected="interval x y z alpha beta gamma")
            return {"accel": v[1:4] / G_MS2, "gyro": v[4:7]}
        v = floats(address, args, n=1, expected="0 or 1")
        return {"button": v}


class ZigSim(Format):
    name = "zigsim"
    default_port = 50000
    prefixes = ("/ZIGSIM/",)

    def match(self, address: str) -> tuple[str, str] | None:
        parts = address.split("/")
        if len(parts) == 4 and parts[1] == "ZIGSIM" and parts[2]:
            return parts[2], parts[3]
        return None

    def decode(self, address: str, kind: str, args: Sequence[Any]) -> Fields:
        if kind == "accel":
            # iOS user acceleration (gravity removed) in G; gravity arrives separately.
            return {"accel": floats(address, args, n=3, expected="x y z (G)")}
        if kind == "gyro":
            return {"gyro": floats(address, args, n=3, expected="x y z (rad/s)") * RAD2DEG}
        if kind == "gravity":
            return {"gravity": floats(address, args, n=3, expected="x y z (G)")}
        if kind == "quaternion":
            q = floats(address, args, n=4, expected="x y z w")
            return {"quat": np.array([q[3], q[0], q[1], q[2]])}
        return {}  # compass, pressure, touch...: accepted, not used


class Sensors2OSC(Format):
    name = "sensors2osc"
    default_port = 9000
    _kinds = ("/accelerometer", "/gyroscope", "/rotationvector", "/gravity", "/linearacceleration")

    def match(self, address: str) -> tuple[str, str] | None:
        if address in self._kinds:
            return "0", address[1:]
        return None

    def decode(self, address: str, kind: str, args: Sequence[Any]) -> Fields:
        if kind == "accelerometer":
            return {"accel": floats(address, args, n=3, expected="x y z (m/s²)") / G_MS2}
        if kind == "gyroscope":
            return {"gyro": floats(address, args, n=3, expected="x y z (rad/s)") * RAD2DEG}
        if kind == "gravity":
            return {"gravity": floats(address, args, n=3, expected="x y z (m/s²)") / G_MS2}
        if kind == "rotationvector":
            v = floats(address, args, at_least=3, at_most=5, expected="x y z [w [accuracy]]")
            xyz = v[:3]
            w = v[3] if len(v) >= 4 else math.sqrt(max(0.0, 1.0 - float(xyz @ xyz)))
            return {"quat": np.array([w, *xyz])}
        return {}


class TouchOSC(Format):
    name = "touchosc"
    default_port = 8000

    def match(self, address: str) -> tuple[str, str] | None:
        return ("0", "accxyz") if address == "/accxyz" else None

    def decode(self, address: str, kind: str, args: Sequence[Any]) -> Fields:
        return {"accel": floats(address, args, n=3, expected="x y z (g)")}


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (RiotV2(), V3("riot"), V3("comote"), ComoteV2(), ZigSim(), Sensors2OSC(), TouchOSC())
}


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown sensor format {name!r}; known: {', '.join(FORMATS)}") from None

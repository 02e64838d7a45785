"""IMU decoders (every format) and gesture features on synthetic message streams."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mappings.errors import InputError
from mappings.gesture import MotionFeatures, quat_to_euler
from mappings.imu import FORMATS, G_MS2, get_format
from mappings.sources import ImuSource

RATE_HZ = 100.0


def riot_v2_frame(acc_g, gyro_dps=(0, 0, 0), quat=(1, 0, 0, 0), euler=(0, 0, 0)) -> list[float]:
    return [
        *acc_g,
        *(g / 1000.0 for g in gyro_dps),
        0.1,
        0.2,
        0.3,
        4.0,
        1,
        0,
        100,
        200,
        *quat,
        *euler,
        12.0,
    ]


# One message per format that means: accel (0, 0, 1 g), gyro (0, 0, 90 deg/s) where it has one.
CASES = [
    ("riot-v2", "/3/raw", riot_v2_frame((0, 0, 1), (0, 0, 90)), "3"),
    ("riot-v3", "/riot/v3/7/accelerometer", [0, 0, G_MS2, 1234, 200], "7"),
    ("riot-v3", "/riot/v3/7/gyroscope", [0, 0, math.pi / 2, 1234, 200], "7"),
    ("comote-v3", "/comote/v3/ab/accelerometer", [0, 0, G_MS2, 1, 60], "ab"),
    ("comote-v2", "/comote/42/devicemotion", [16, 0, 0, G_MS2, 0, 0, 90], "42"),
    ("zigsim", "/ZIGSIM/uuid-1/accel", [0, 0, 1], "uuid-1"),
    ("zigsim", "/ZIGSIM/uuid-1/gyro", [0, 0, math.pi / 2], "uuid-1"),
    ("sensors2osc", "/accelerometer", [0, 0, G_MS2], "0"),
    ("sensors2osc", "/gyroscope", [0, 0, math.pi / 2], "0"),
    ("touchosc", "/accxyz", [0, 0, 1], "0"),
]


@pytest.mark.parametrize(("fmt", "address", "args", "sensor_id"), CASES)
def test_each_format_decodes_to_common_units(fmt, address, args, sensor_id) -> None:
    f = get_format(fmt)
    m = f.match(address)
    assert m is not None and m[0] == sensor_id
    fields = f.decode(address, m[1], args)
    if "accel" in fields:
        np.testing.assert_allclose(fields["accel"], [0, 0, 1], atol=1e-9)
    if "gyro" in fields:
        np.testing.assert_allclose(fields["gyro"], [0, 0, 90], atol=1e-9)
    assert fields


def test_quaternion_orders_are_normalised_to_wxyz() -> None:
    q_xyzw = [0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4)]  # 90° yaw
    for fmt, address in (
        ("riot-v3", "/riot/v3/1/absoluteorientation/quaternion"),
        ("zigsim", "/ZIGSIM/u/quaternion"),
    ):
        f = get_format(fmt)
        fields = f.decode(address, f.match(address)[1], q_xyzw)
        yaw, pitch, roll = quat_to_euler(fields["quat"])
        assert (
            yaw == pytest.approx(90.0)
            and pitch == pytest.approx(0.0)
            and roll == pytest.approx(0.0)
        )
    f = get_format("riot-v2")
    fields = f.decode("/1/raw", "raw", riot_v2_frame((0, 0, 1), quat=(q_xyzw[3], 0, 0, q_xyzw[2])))
    assert quat_to_euler(fields["quat"])[0] == pytest.approx(90.0)


@pytest.mark.parametrize(
    ("address", "args", "kind"),
    [
        ("/3/raw", [0.0] * 21, "arity"),
        ("/3/raw", [0.0] * 21 + ["x"], "type"),
        ("/3/raw", [0.0] * 21 + [math.nan], "nan"),
        ("/accxyz", [0.0, math.inf, 0.0], "nan"),
        ("/comote/1/devicemotion", [1, 2, 3], "arity"),
    ],
)
def test_bad_messages_raise_input_error_with_kind(address, args, kind) -> None:
    for f in FORMATS.values():
        m = f.match(address)
        if m is not None:
            with pytest.raises(InputError) as err:
                f.decode(address, m[1], args)
            assert err.value.kind == kind
            assert (
                "expects" in str(err.value)
                or "must" in str(err.value)
                or "non-finite" in str(err.value)
            )
            return
    pytest.fail(f"no format owns {address}")


def _shake(seconds: float, amp_g: float, freq_hz: float, *, t0: float = 0.0):
    t = t0 + np.arange(0, seconds, 1.0 / RATE_HZ)
    acc = np.stack(
        [amp_g * np.sin(2 * np.pi * freq_hz * t), np.zeros_like(t), np.ones_like(t)], axis=1
    )
    return t, acc


def test_intensity_is_zero_at_rest_and_grows_with_motion() -> None:
    feats = MotionFeatures()
    levels = []
    for amp in (0.0, 0.2, 1.0):
        feats.reset()
        t, acc = _shake(2.0, amp, 3.0)
        vals = [feats.update(ti, {"accel": a})["intensity"] for ti, a in zip(t, acc, strict=True)]
        levels.append(float(np.mean(vals[100:])))
    assert levels[0] == pytest.approx(0.0, abs=1e-12)
    assert 0 < levels[1] < levels[2]


def test_intensity_does_not_depend_on_sensor_rate() -> None:
    means = []
    for rate in (50.0, 200.0):
        feats = MotionFeatures()
        t = np.arange(0, 3.0, 1.0 / rate)
        acc = np.stack([0.5 * np.sin(2 * np.pi * 2.0 * t), 0 * t, 1 + 0 * t], axis=1)
        vals = [feats.update(ti, {"accel": a})["intensity"] for ti, a in zip(t, acc, strict=True)]
        means.append(np.mean(vals[len(vals) // 3 :]))
    assert means[0] == pytest.approx(means[1], rel=0.1)


def test_kicks_are_detected_once_each() -> None:
    feats = MotionFeatures()
    t = np.arange(0, 4.0, 1.0 / RATE_HZ)
    acc = np.tile([0.0, 0.0, 1.0], (t.size, 1))
    kick_times = (0.5, 1.5, 2.5, 3.2)
    for kt in kick_times:  # a sharp 40 ms jolt
        acc[(t >= kt) & (t < kt + 0.04), 0] = 2.0
    onsets = []
    prev = 0.0
    for ti, a in zip(t, acc, strict=True):
        k = feats.update(float(ti), {"accel": a})["kick"]
        if k > 0.99 and prev < 0.99:
            onsets.append(float(ti))
        prev = k
    assert len(onsets) == len(kick_times)
    for got, want in zip(onsets, kick_times, strict=True):
        assert got == pytest.approx(want, abs=0.03)


def test_tilt_from_gravity_and_band_limited_acceleration() -> None:
    feats = MotionFeatures()
    t = np.arange(0, 3.0, 1.0 / RATE_HZ)
    # Tilted 30° about y, holding still: tilt_x = sin 30°, no band energy after settling.
    g = np.array([math.sin(math.radians(30)), 0.0, math.cos(math.radians(30))])
    out = {}
    for ti in t:
        out = feats.update(float(ti), {"accel": g})
    assert out["tilt_x"] == pytest.approx(0.5, abs=0.01)
    assert out["band"] == pytest.approx(0.0, abs=1e-3)

    # A 3 Hz oscillation passes the 0.5-10 Hz band; a 40 Hz buzz is attenuated.
    def band_rms(freq):
        f = MotionFeatures()
        tt = np.arange(0, 3.0, 1.0 / 200.0)
        vals = [
            f.update(float(x), {"accel": np.array([0.3 * math.sin(2 * math.pi * freq * x), 0, 1])})[
                "band_x"
            ]
            for x in tt
        ]
        return float(np.sqrt(np.mean(np.square(vals[200:]))))

    assert band_rms(3.0) > 3 * band_rms(40.0)
    assert band_rms(3.0) == pytest.approx(0.3 / math.sqrt(2), rel=0.3)


def test_several_sensors_routed_by_id() -> None:
    src = ImuSource("riot", "riot-v2", ids=["1", "2"])
    assert src.owns("/1/raw") and src.owns("/2/raw") and not src.owns("/3/raw")
    t, acc = _shake(1.0, 1.0, 4.0)
    last = {}
    for ti, a in zip(t, acc, strict=True):
        last.update(src.signals(float(ti), "/1/raw", riot_v2_frame(a)))
        last.update(src.signals(float(ti), "/2/raw", riot_v2_frame((0, 0, 1))))
    assert last["riot.1.intensity"] > 0.002
    assert last["riot.2.intensity"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(InputError, match="not routed"):
        src.check("/3/raw", riot_v2_frame((0, 0, 1)))
